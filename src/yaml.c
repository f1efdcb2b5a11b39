/* yaml.c: libyaml events -> the positioned node tree of yaml.h.
 * Nodes and strings come from a bump arena owned by the doc, so the tree is freed in one call.
 * Children are gathered on one scratch stack while their collection is open and copied into the
 * arena when it closes. Talks only to libyaml; config.c is the consumer. */
#include "fulcrum/yaml.h"

#include <stdio.h>
#include <string.h>
#include <yaml.h>

/* One arena block; blocks are chained newest first. */
struct fc_yaml_chunk {
    struct fc_yaml_chunk *next; /* older block */
    size_t used;                /* bytes handed out from data */
    size_t cap;                 /* bytes in data */
    _Alignas(max_align_t) unsigned char data[];
};

#define CHUNK_SIZE 8192

/* Returns <n> zeroed bytes from <doc>'s arena, aligned for any type. */
static void *arena_alloc(fc_yaml_doc_t *doc, size_t n)
{
    const size_t align = _Alignof(max_align_t);
    struct fc_yaml_chunk *c = doc->chunks;
    n = (n + align - 1) & ~(align - 1);
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = FC_MAX(n, (size_t)CHUNK_SIZE);
        c = fc_xmalloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        c->next = doc->chunks;
        doc->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return memset(p, 0, n);
}

/* An open sequence or mapping: its node and where its children start on the scratch stack. */
typedef struct frame {
    fc_yaml_node_t *node;
    size_t start;
} frame_t;

/* Parser state for one fc_yaml_parse call; the two stacks are plain malloc'd vectors. */
typedef struct builder {
    fc_yaml_doc_t *doc;
    const char *text;       /* borrowed input, for positions of reader errors */
    size_t len;
    fc_yaml_node_t **nodes; /* owned scratch stack of finished children */
    size_t nnodes, capnodes;
    frame_t *frames;        /* owned stack of open collections */
    size_t nframes, capframes;
    int ndocs;              /* documents started so far */
} builder_t;

/* Grows the vector *<base> (of <size>-byte items, *<cap> allocated) to hold one more item. */
static void grow(void **base, size_t *cap, size_t count, size_t size)
{
    if (count < *cap) return;
    *cap = *cap ? *cap * 2 : 16;
    void *p = realloc(*base, *cap * size);
    if (p == NULL) {
        fputs("fulcrum: out of memory\n", stderr);
        abort();
    }
    *base = p;
}

static int err_at_mark(builder_t *b, fc_err_t *err, yaml_mark_t m, const char *msg)
{
    return fc_err_setpos(err, b->doc->file, (int)m.line + 1, (int)m.column + 1, "%s", msg);
}

/* Turns a failed yaml_parser_parse into "<problem> <context>" at the problem's position. */
static int parser_error(builder_t *b, const yaml_parser_t *p, fc_err_t *err)
{
    char msg[200];
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR) problem = "out of memory while parsing";
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset rather than a mark: count lines up to it. */
        m.line = m.column = 0;
        for (size_t i = 0; i < p->problem_offset && i < b->len; i++) {
            if (b->text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else {
                m.column++;
            }
        }
    }
    if (p->context != NULL) snprintf(msg, sizeof(msg), "%s %s", problem, p->context);
    else snprintf(msg, sizeof(msg), "%s", problem);
    if (m.index < b->len && b->text[m.index] == '\t')
        snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (tabs cannot indent YAML; use spaces)");
    return err_at_mark(b, err, m, msg);
}

/* A node about to become a child of the innermost open collection may not be a mapping key unless
 * it is a scalar. Checked when the node starts, so a bad key is reported where it is written. */
static int check_key(builder_t *b, const fc_yaml_node_t *n, fc_err_t *err)
{
    if (b->nframes == 0 || n->kind == FC_YAML_SCALAR) return 0;
    const frame_t *f = &b->frames[b->nframes - 1];
    if (f->node->kind != FC_YAML_MAPPING || (b->nnodes - f->start) % 2 != 0) return 0;
    return fc_err_setpos(err, b->doc->file, n->line, n->column, "mapping keys must be plain values, not %s",
                         fc_yaml_kind_name(n->kind));
}

/* Pushes a finished node as a child of the innermost open collection (or as the root). */
static void push_node(builder_t *b, fc_yaml_node_t *n)
{
    grow((void **)&b->nodes, &b->capnodes, b->nnodes, sizeof(*b->nodes));
    b->nodes[b->nnodes++] = n;
}

static fc_yaml_node_t *new_node(builder_t *b, fc_yaml_kind_t kind, yaml_mark_t m)
{
    fc_yaml_node_t *n = arena_alloc(b->doc, sizeof(*n));
    n->kind = kind;
    n->line = (int)m.line + 1;
    n->column = (int)m.column + 1;
    return n;
}

static int open_collection(builder_t *b, fc_yaml_kind_t kind, yaml_mark_t m, fc_err_t *err)
{
    fc_yaml_node_t *n = new_node(b, kind, m);
    if (check_key(b, n, err) < 0) return -1;
    grow((void **)&b->frames, &b->capframes, b->nframes, sizeof(*b->frames));
    b->frames[b->nframes++] = (frame_t){n, b->nnodes};
    return 0;
}

/* Closes the innermost collection: moves its children into the arena and rejects duplicate keys. */
static int close_collection(builder_t *b, fc_err_t *err)
{
    frame_t f = b->frames[--b->nframes];
    size_t n = b->nnodes - f.start;
    fc_yaml_node_t **kids = n ? b->nodes + f.start : NULL; /* nodes is NULL until a first push */
    if (f.node->kind == FC_YAML_SEQUENCE) {
        f.node->seq.items = arena_alloc(b->doc, n * sizeof(*kids));
        if (n) memcpy(f.node->seq.items, kids, n * sizeof(*kids));
        f.node->seq.n = n;
    } else {
        fc_yaml_pair_t *pairs = arena_alloc(b->doc, (n / 2) * sizeof(*pairs));
        for (size_t i = 0; i < n / 2; i++) {
            pairs[i].key = kids[2 * i];
            pairs[i].value = kids[2 * i + 1];
            for (size_t j = 0; j < i; j++) {
                if (strcmp(pairs[j].key->scalar.text, pairs[i].key->scalar.text) != 0) continue;
                return fc_err_setpos(err, b->doc->file, pairs[i].key->line, pairs[i].key->column,
                                     "duplicate key '%s' (first set at line %d)", pairs[i].key->scalar.text,
                                     pairs[j].key->line);
            }
        }
        f.node->map.pairs = pairs;
        f.node->map.n = n / 2;
    }
    b->nnodes = f.start;
    push_node(b, f.node);
    return 0;
}

/* Rejects the YAML features config files never need, so they cannot change meaning silently. */
static int check_anchor(builder_t *b, const yaml_char_t *anchor, yaml_mark_t m, fc_err_t *err)
{
    if (anchor == NULL) return 0;
    return fc_err_setpos(err, b->doc->file, (int)m.line + 1, (int)m.column + 1,
                         "anchors (&%s) are not supported; write the value out", (const char *)anchor);
}

/* Handles one event. Returns 1 at the end of the stream, 0 to go on, -1 on error. */
static int on_event(builder_t *b, const yaml_event_t *ev, fc_err_t *err)
{
    yaml_mark_t m = ev->start_mark;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (b->ndocs++ > 0) return err_at_mark(b, err, m, "only one YAML document is allowed");
        return 0;
    case YAML_ALIAS_EVENT: {
        char msg[160];
        snprintf(msg, sizeof(msg), "aliases (*%s) are not supported; write the value out",
                 (const char *)ev->data.alias.anchor);
        return err_at_mark(b, err, m, msg);
    }
    case YAML_SCALAR_EVENT: {
        if (check_anchor(b, ev->data.scalar.anchor, m, err) < 0) return -1;
        fc_yaml_node_t *n = new_node(b, FC_YAML_SCALAR, m);
        char *text = arena_alloc(b->doc, ev->data.scalar.length + 1);
        memcpy(text, ev->data.scalar.value, ev->data.scalar.length);
        n->scalar.text = text;
        n->scalar.len = ev->data.scalar.length;
        n->scalar.plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        push_node(b, n);
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
        if (check_anchor(b, ev->data.sequence_start.anchor, m, err) < 0) return -1;
        return open_collection(b, FC_YAML_SEQUENCE, m, err);
    case YAML_MAPPING_START_EVENT:
        if (check_anchor(b, ev->data.mapping_start.anchor, m, err) < 0) return -1;
        return open_collection(b, FC_YAML_MAPPING, m, err);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return close_collection(b, err);
    default: return 0;
    }
}

int fc_yaml_parse(const char *file, const char *text, size_t len, fc_yaml_doc_t **out, fc_err_t *err)
{
    yaml_parser_t parser;
    builder_t b = {.text = text, .len = len};
    int rc = 0;

    b.doc = fc_xcalloc(1, sizeof(*b.doc));
    b.doc->file = file;
    if (!yaml_parser_initialize(&parser)) {
        fc_yaml_free(b.doc);
        return fc_err_setpos(err, file, 0, 0, "cannot initialize the YAML parser");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&b, &parser, err);
            break;
        }
        rc = on_event(&b, &ev, err);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (rc >= 0) {
        FC_ASSERT(b.nframes == 0 && b.nnodes <= 1);
        b.doc->root = b.nnodes ? b.nodes[0] : NULL;
        *out = b.doc;
    } else {
        fc_yaml_free(b.doc);
    }
    free(b.nodes);
    free(b.frames);
    return rc < 0 ? -1 : 0;
}

void fc_yaml_free(fc_yaml_doc_t *doc)
{
    if (doc == NULL) return;
    while (doc->chunks != NULL) {
        struct fc_yaml_chunk *next = doc->chunks->next;
        free(doc->chunks);
        doc->chunks = next;
    }
    free(doc);
}

const fc_yaml_node_t *fc_yaml_map_get(const fc_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != FC_YAML_MAPPING) return NULL;
    for (size_t i = 0; i < map->map.n; i++)
        if (strcmp(map->map.pairs[i].key->scalar.text, key) == 0) return map->map.pairs[i].value;
    return NULL;
}

int fc_yaml_is_null(const fc_yaml_node_t *node)
{
    if (node->kind != FC_YAML_SCALAR || !node->scalar.plain) return 0;
    const char *t = node->scalar.text;
    return *t == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

const char *fc_yaml_kind_name(fc_yaml_kind_t kind)
{
    switch (kind) {
    case FC_YAML_SEQUENCE: return "a list";
    case FC_YAML_MAPPING: return "a mapping";
    default: return "a value";
    }
}
