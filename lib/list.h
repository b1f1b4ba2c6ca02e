/*
 * list.h - an intrusive circular doubly linked list, in the manner of the
 * Linux kernel's list.h.
 *
 * A list is a struct kv_list head (a sentinel) and the struct kv_list
 * links embedded in its members; kv_list_entry() gets from a link back to
 * its member. An empty head points at itself; head.next is the first
 * member, head.prev the last. Every operation is O(1) but the walks.
 *
 * Invariants: a link is on at most one list; a link taken off by
 * kv_list_del() has next == prev == NULL, so that a second removal, or a
 * use of a removed member, faults at once instead of corrupting a list.
 * Locking: none; the caller serializes. Ownership: the list owns nothing;
 * members are the caller's, and freeing one while it is linked is a bug.
 */
#ifndef KV_LIST_H
#define KV_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct kv_list {
	struct kv_list *next;
	struct kv_list *prev;
};

/* A head initialized where it is defined: struct kv_list h = KV_LIST_INIT(h); */
#define KV_LIST_INIT(name) { &(name), &(name) }

/* The member that embeds link ptr as its field member. */
#define kv_list_entry(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Make head an empty list. */
static inline void kv_list_init(struct kv_list *head)
{
	head->next = head;
	head->prev = head;
}

static inline bool kv_list_empty(const struct kv_list *head)
{
	return head->next == head;
}

/* True when the list holds exactly one member. */
static inline bool kv_list_is_singular(const struct kv_list *head)
{
	return head->next != head && head->next == head->prev;
}

/* True while n is on a list (between an add and a kv_list_del()). */
static inline bool kv_list_is_linked(const struct kv_list *n)
{
	return n->next && n->prev;
}

static inline void kv_list_insert_between(struct kv_list *n, struct kv_list *prev,
				       struct kv_list *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

/* Add n as the first member of head's list. */
static inline void kv_list_add(struct kv_list *head, struct kv_list *n)
{
	kv_list_insert_between(n, head, head->next);
}

/* Add n as the last member of head's list. */
static inline void kv_list_add_tail(struct kv_list *head, struct kv_list *n)
{
	kv_list_insert_between(n, head->prev, head);
}

/* Take n off its list; n's pointers become NULL. n must be linked. */
static inline void kv_list_del(struct kv_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = NULL;
	n->prev = NULL;
}

/* Take n off its list and add it as the last member of head's list. */
static inline void kv_list_move_tail(struct kv_list *head, struct kv_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	kv_list_add_tail(head, n);
}

/* The first (last) member of a non-empty list, as its type. */
#define kv_list_first_entry(head, type, member) \
	kv_list_entry((head)->next, type, member)
#define kv_list_last_entry(head, type, member) \
	kv_list_entry((head)->prev, type, member)

/* Walk the members first to last; pos is a pointer to the member type.
 * The body must not remove pos (use the _safe form for that). */
#define kv_list_for_each_entry(pos, head, member)				\
	for (pos = kv_list_entry((head)->next, __typeof__(*pos), member);	\
	     &pos->member != (head);						\
	     pos = kv_list_entry(pos->member.next, __typeof__(*pos), member))

/* The same, but the body may remove pos; tmp is a second cursor. */
#define kv_list_for_each_entry_safe(pos, tmp, head, member)			\
	for (pos = kv_list_entry((head)->next, __typeof__(*pos), member),	\
	     tmp = kv_list_entry(pos->member.next, __typeof__(*pos), member);	\
	     &pos->member != (head);						\
	     pos = tmp,								\
	     tmp = kv_list_entry(tmp->member.next, __typeof__(*pos), member))

#endif
