/* list.h: intrusive circular doubly linked list (header only). A node that is not in a list
 * points at itself, so fc_list_remove is safe to call twice. */
#ifndef FULCRUM_LIST_H
#define FULCRUM_LIST_H

#include <stddef.h>

typedef struct fc_list {
    struct fc_list *next;
    struct fc_list *prev;
} fc_list_t;

static inline void fc_list_init(fc_list_t *l) { l->next = l->prev = l; }
static inline int fc_list_empty(const fc_list_t *l) { return l->next == l; }
static inline int fc_list_linked(const fc_list_t *n) { return n->next != n; }
static inline void fc_list_insert_tail(fc_list_t *head, fc_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void fc_list_insert_head(fc_list_t *head, fc_list_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
static inline void fc_list_remove(fc_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
#define fc_list_entry(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
