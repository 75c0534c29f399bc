/* rq_internal.h -- private to the runtime .c files; never included by generated
 * code.  It pulls in reqon.h and one small header per runtime module, so
 * each module declares what it shares in a file named after it:
 *
 *   rq_util.h   allocation, capped buffers, clocks, ISO time   (util.c)
 *   rq_log.h    levelled logger and secret redaction           (log.c)
 *   rq_value.h  JSON value semantics shared by the runtime     (value.c)
 *   rq_exec.h   RqRun, RqScope, running missions               (exec.c)
 *   rq_http.h   requests, retries, pagination, credentials     (http.c,
 *               paginate.c, auth.c)
 *   rq_limit.h  per-source rate limiter and circuit breaker    (ratelimit.c,
 *               breaker.c; included where used)
 *   rq_metrics.h  metrics registry, health server (metrics.c, health.c;
 *               included where used)
 *   rq_store.h  the store registry and its kinds               (store*.c)
 *   rq_state.h  checkpoints and the data-dir lock              (state.c)
 *   rq_daemon.h process-wide options                           (daemon.c)
 *
 * Functions shared across runtime files are named rqi_<module>_<verb>.
 */
#ifndef RQ_INTERNAL_H
#define RQ_INTERNAL_H

#include "reqon.h"
#include "rq_util.h"
#include "rq_log.h"
#include "rq_value.h"
#include "rq_exec.h"
#include "rq_http.h"
#include "rq_store.h"
#include "rq_state.h"
#include "rq_daemon.h"

#endif
