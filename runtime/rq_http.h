/* rq_http.h -- http.c, paginate.c, auth.c: everything between a step and
 * the network.  http.c keeps a transport-neutral request interface. */
#ifndef RQ_HTTP_H
#define RQ_HTTP_H

#include <jansson.h>
#include "reqon.h"

int rqi_http_global_init(void);     /* curl_global_init; 0 or -1 */
void rqi_http_global_cleanup(void);

/* Credentials (SPEC §6.1): loads the --auth file (NULL: none).  Returns 0,
 * or -1 after logging why (the caller exits 3). */
int rqi_auth_load(const char *path);
void rqi_auth_free(void);
/* Logs the startup WARN of §6.1 for each source whose credentials are
 * missing or of another type. */
void rqi_auth_check_mission(const RqMissionDef *m);

/* Runs HTTP step st (RQ_ST_HTTP) in env: evaluates path, query, body and
 * headers; adds auth, since and pagination parameters; retries (§6.4);
 * paginates (§6.5).  On success sets env->scope's response, status and
 * headers and records checkpoint candidates (rq_state.h).  A final non-2xx
 * is an error unless st->next_is_match.  Returns 0 or -RQ_E_*. */
int rqi_http_step(const RqEnv *env, const RqStep *st);

#endif
