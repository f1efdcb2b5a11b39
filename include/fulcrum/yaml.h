/* yaml.h: a small positioned YAML tree built from libyaml events (yaml-0.1).
 * A document is scalars, sequences and mappings; every node keeps its 1-based line and column so
 * config.c can report "FILE:LINE:COLUMN: message". The whole tree lives in one arena owned by the
 * fc_yaml_doc_t and is freed as one unit. Anchors, aliases and multiple documents are rejected. */
#ifndef FULCRUM_YAML_H
#define FULCRUM_YAML_H

#include <stddef.h>

#include "fulcrum/common.h"

typedef enum fc_yaml_kind {
    FC_YAML_SCALAR = 0,
    FC_YAML_SEQUENCE = 1,
    FC_YAML_MAPPING = 2,
} fc_yaml_kind_t;

typedef struct fc_yaml_node fc_yaml_node_t;
typedef struct fc_yaml_pair fc_yaml_pair_t;
typedef struct fc_yaml_doc fc_yaml_doc_t;

struct fc_yaml_pair {
    fc_yaml_node_t *key;   /* always a scalar; borrowed from the doc's arena */
    fc_yaml_node_t *value; /* borrowed from the doc's arena */
};

struct fc_yaml_node {
    fc_yaml_kind_t kind;
    int line;   /* 1-based line where the node starts */
    int column; /* 1-based column where the node starts */
    union {
        struct {
            const char *text; /* NUL-terminated, in the doc's arena */
            size_t len;       /* bytes in text, excluding the NUL */
            int plain;        /* 1 when written unquoted (only plain scalars can be null) */
        } scalar;
        struct {
            fc_yaml_node_t **items; /* n items in file order, in the doc's arena */
            size_t n;
        } seq;
        struct {
            fc_yaml_pair_t *pairs; /* n pairs in file order, keys unique, in the doc's arena */
            size_t n;
        } map;
    };
};

struct fc_yaml_doc {
    const char *file;             /* borrowed from the caller of fc_yaml_parse */
    fc_yaml_node_t *root;         /* NULL when the document is empty */
    struct fc_yaml_chunk *chunks; /* private: the arena holding every node and string */
};

/* Parses <len> bytes of <text> as one YAML document. <file> names it in errors and must outlive
 * both the doc and <err>. Returns 0 and a new doc in *<out> (free with fc_yaml_free), or -1 with
 * <err> set to "<problem>" at the 1-based position libyaml reports; duplicate mapping keys,
 * non-scalar keys, anchors, aliases and a second document are errors too. */
int fc_yaml_parse(const char *file, const char *text, size_t len, fc_yaml_doc_t **out, fc_err_t *err);

/* Frees <doc> and every node in it. NULL is fine. */
void fc_yaml_free(fc_yaml_doc_t *doc);

/* The value stored under <key> in mapping <map>, or NULL (also when <map> is not a mapping). */
const fc_yaml_node_t *fc_yaml_map_get(const fc_yaml_node_t *map, const char *key);

/* 1 when <node> is a plain empty, "~" or "null" scalar, as YAML reads them. */
int fc_yaml_is_null(const fc_yaml_node_t *node);

/* "a mapping", "a list" or "a value", for "expected X, got Y" messages. */
const char *fc_yaml_kind_name(fc_yaml_kind_t kind);

#endif
