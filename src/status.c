/* status.c: the status page and its JSON (see status.h). One pass over the configuration's
 * upstreams and servers, with the merged metric blocks for request and error counts and the
 * shared server state for health; the page is one embedded asset (HTML, CSS and a short script,
 * no framework). */
#include "fulcrum/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fulcrum/metrics.h"
#include "fulcrum/upstream.h"
#include "fulcrum/worker.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

typedef struct out {
    fc_buf_t *b;
    int failed;
} out_t;

#define put(o, ...)                                                                                \
    do {                                                                                           \
        if (fc_buf_printf((o)->b, __VA_ARGS__) != 0) (o)->failed = 1;                              \
    } while (0)

static void put_raw(out_t *o, const char *s)
{
    if (fc_buf_append(o->b, s, strlen(s)) != 0) o->failed = 1;
}

/* <s> with the characters HTML and JSON strings treat specially replaced (names and addresses
 * are restricted by the loader; this is for safety only). */
static const char *clean(const char *s, char *buf, size_t n)
{
    size_t o = 0;
    for (; *s && o + 1 < n; s++) buf[o++] = strchr("<>&\"'\\", *s) || (unsigned char)*s < 0x20 ? '_' : *s;
    buf[o] = '\0';
    return buf;
}

/* What the page says of one server. */
typedef struct server_state {
    const char *state;         /* UP, DOWN, DRAINING, BACKUP, SLOW START */
    double effective_weight;
    unsigned in_flight;
    unsigned long long requests, errors, last_transition, last_check_ms;
    const char *last_check;    /* success, failure, none */
} server_state_t;

static void describe(fc_worker_t *w, fc_upstream_t *u, size_t k, const fc_metrics_snapshot_t *snap,
                     server_state_t *ss)
{
    fc_server_t *s = &u->servers[k];
    fc_shm_server_t *st = s->st;
    uint64_t now = uv_now(w->loop), until = LOAD(st->failed_until), since = LOAD(st->up_since);
    int up = !s->conf->down && LOAD(st->healthy) && (until == 0 || now >= until);
    /* Taken out in the configuration (down: true) with requests or tunnels still on it: they finish,
     * no new one comes. */
    ss->state = s->conf->down && LOAD(st->active) > 0                              ? "DRAINING"
                : !up                                                              ? "DOWN"
                : s->conf->slow_start > 0 && since != 0 && now - since < s->conf->slow_start ? "SLOW START"
                : s->conf->backup                                                  ? "BACKUP"
                                                                                   : "UP";
    ss->effective_weight = s->conf->down ? 0.0 : (double)u->view[k].weight / FC_WEIGHT_SCALE;
    ss->in_flight = LOAD(st->active);
    ss->requests = ss->errors = 0;
    char key[FC_METRICS_KEY];
    snprintf(key, sizeof(key), "%s/%s", u->conf->name, s->conf->addr.text);
    const fc_metrics_merged_t *m = fc_metrics_find(snap, FC_MF_SERVER, key);
    for (unsigned i = 0; m != NULL && i < 5; i++) ss->requests += m->v[FC_MV_RESP + i];
    for (unsigned i = 0; m != NULL && i < 4; i++) ss->errors += m->v[FC_MV_ERR + i];
    ss->last_transition = LOAD(st->last_transition);
    ss->last_check_ms = LOAD(st->last_check_ms);
    ss->last_check = LOAD(st->checks_ok) + LOAD(st->checks_failed) == 0 ? "none"
                     : LOAD(st->last_check_ok)                         ? "success"
                                                                       : "failure";
}

/* The document both renderers share: the JSON, or (<html>) the page's table rows. */
static int render(fc_worker_t *w, out_t *o, int html)
{
    fc_metrics_shm_t *m = w->metrics.shm;
    if (m == NULL) return -1;
    fc_metrics_snapshot_t snap;
    if (fc_metrics_snapshot_of(m, &snap, 1u << FC_MF_SERVER) != 0) return -1;
    const fc_config_t *cfg = w->cfg;
    char n1[160], n2[160];
    unsigned long long now = (unsigned long long)time(NULL);
    if (!html) {
        put(o,
            "{\"version\":\"%s\",\"uptime_seconds\":%llu,\"started\":%llu,\"workers\":%u,\"generation\":%u,"
            "\"last_reload\":{\"time\":%llu,\"successful\":%s,\"reloads\":%llu,\"failures\":%llu},\"upstreams\":[",
            FC_VERSION, now - (unsigned long long)m->start_time, (unsigned long long)m->start_time,
            LOAD(w->shm->nworkers), LOAD(w->shm->generation), (unsigned long long)LOAD(m->last_reload_ok_time),
            LOAD(m->last_reload_ok) ? "true" : "false", (unsigned long long)LOAD(m->reloads_ok),
            (unsigned long long)LOAD(m->reloads_failed));
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        fc_upstream_t *u = &w->upstreams[i];
        fc_upstream_refresh(u);
        clean(u->conf->name, n1, sizeof(n1));
        if (html) put(o, "<h2>%s</h2>\n<table><tr><th>server</th><th>state</th><th>weight</th><th>in flight</th>"
                         "<th>requests</th><th>errors</th><th>last check</th><th>last change</th></tr>\n", n1);
        else put(o, "%s{\"name\":\"%s\",\"servers\":[", i ? "," : "", n1);
        for (size_t k = 0, shown = 0; k < u->conf->nservers; k++) {
            if (u->servers[k].vacant) continue; /* a position of a resolving name with no address now */
            server_state_t ss;
            describe(w, u, k, &snap, &ss);
            clean(u->servers[k].conf->addr.text, n2, sizeof(n2));
            if (html) {
                char cls[16];
                snprintf(cls, sizeof(cls), "%s", ss.state);
                if (cls[4] == ' ') cls[4] = '_'; /* SLOW_START */
                char when[32] = "never", took[32] = "";
                time_t t = (time_t)ss.last_transition;
                struct tm tm;
                if (t != 0 && gmtime_r(&t, &tm) != NULL) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
                if (strcmp(ss.last_check, "none") != 0) snprintf(took, sizeof(took), " (%llu ms)", ss.last_check_ms);
                put(o,
                    "<tr class=\"%s\"><td>%s</td><td>%s</td><td>%g</td><td>%u</td><td>%llu</td><td>%llu</td>"
                    "<td>%s%s</td><td>%s</td></tr>\n",
                    cls, n2, ss.state, ss.effective_weight, ss.in_flight, ss.requests, ss.errors, ss.last_check,
                    took, when);
            } else {
                put(o,
                    "%s{\"address\":\"%s\",\"state\":\"%s\",\"weight\":%d,\"effective_weight\":%g,\"in_flight\":%u,"
                    "\"requests\":%llu,\"errors\":%llu,\"last_check\":{\"result\":\"%s\",\"ms\":%llu},"
                    "\"last_transition\":%llu}",
                    shown++ ? "," : "", n2, ss.state, u->servers[k].conf->weight, ss.effective_weight, ss.in_flight,
                    ss.requests, ss.errors, ss.last_check, ss.last_check_ms, ss.last_transition);
            }
        }
        put_raw(o, html ? "</table>\n" : "]}");
    }
    if (!html) put_raw(o, "]}\n");
    fc_metrics_snapshot_free(&snap);
    return o->failed ? -1 : 0;
}

int fc_status_render_json(fc_worker_t *w, fc_buf_t *out)
{
    out_t o = {out, 0};
    return render(w, &o, 0);
}

/* The page: the tables are rendered here, the script redraws them from the JSON every 2 s. */
static const char page_head[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>fulcrum status</title>\n<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1em}"
    "th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}"
    "tr.UP{background:#e7f6e7}tr.DOWN{background:#fbe3e3}tr.BACKUP{background:#eef}tr.SLOW_START{background:#fff6d6}"
    "tr.DRAINING{background:#eee}#info{color:#555}\n</style></head><body>\n<h1>fulcrum</h1>\n";

static const char page_script[] =
    "<script>\n"
    "const J=document.body.dataset.json;\n"
    "function esc(s){return String(s).replace(/[<>&\"']/g,'_')}\n"
    "function ago(t){return t?new Date(t*1000).toISOString().replace('T',' ').slice(0,19)+' UTC':'never'}\n"
    "async function tick(){try{const r=await fetch(J,{cache:'no-store'});const d=await r.json();\n"
    " document.getElementById('info').textContent='version '+d.version+', up '+d.uptime_seconds+' s, '+d.workers+"
    "' workers, generation '+d.generation+', last reload '+ago(d.last_reload.time)+' ('+(d.last_reload.successful?"
    "'successful':'FAILED')+')';\n"
    " let h='';for(const u of d.upstreams){h+='<h2>'+esc(u.name)+'</h2><table><tr><th>server</th><th>state</th>"
    "<th>weight</th><th>in flight</th><th>requests</th><th>errors</th><th>last check</th><th>last change</th></tr>';\n"
    "  for(const s of u.servers){h+='<tr class=\"'+s.state.replace(' ','_')+'\"><td>'+esc(s.address)+'</td><td>'+"
    "s.state+'</td><td>'+s.effective_weight+'</td><td>'+s.in_flight+'</td><td>'+s.requests+'</td><td>'+s.errors+"
    "'</td><td>'+s.last_check.result+(s.last_check.result!=='none'?' ('+s.last_check.ms+' ms)':'')+'</td><td>'+"
    "ago(s.last_transition)+'</td></tr>'}\n"
    "  h+='</table>'}document.getElementById('upstreams').innerHTML=h;document.body.dataset.updated=Date.now()}\n"
    " catch(e){document.getElementById('info').textContent='status unavailable: '+e}}\n"
    "setInterval(tick,2000);tick();\n</script>\n";

int fc_status_render_html(fc_worker_t *w, const char *json_path, fc_buf_t *out)
{
    out_t o = {out, 0};
    fc_metrics_shm_t *m = w->metrics.shm;
    if (m == NULL) return -1;
    char p[160];
    put_raw(&o, page_head);
    put(&o, "<p id=\"info\">version %s, %u workers, generation %u</p>\n<div id=\"upstreams\">\n", FC_VERSION,
        LOAD(w->shm->nworkers), LOAD(w->shm->generation));
    if (render(w, &o, 1) != 0) return -1;
    put(&o, "</div>\n<script>document.body.dataset.json='%s'</script>\n", clean(json_path, p, sizeof(p)));
    put_raw(&o, page_script);
    put_raw(&o, "</body></html>\n");
    return o.failed ? -1 : 0;
}
