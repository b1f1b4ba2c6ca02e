/*
 * test_list.c - unit tests for the intrusive list (lib/list.h).
 *
 * Each operation on a fresh list, then random adds, moves and removals
 * checked against an array model of the same list: after every step the
 * list reads the same both ways as the model, and a removed member is
 * unlinked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/list.h"

struct item {
	int id;
	struct kv_list link;
	bool on;
};

static void check_order(struct kv_list *head, const int *want, size_t n)
{
	struct item *it;
	struct kv_list *l;
	size_t i = 0;

	kv_list_for_each_entry(it, head, link) {
		assert_true(i < n);
		assert_int_equal(it->id, want[i]);
		i++;
	}
	assert_int_equal(i, n);
	/* backwards through prev */
	for (l = head->prev; l != head; l = l->prev) {
		assert_true(i > 0);
		i--;
		assert_int_equal(kv_list_entry(l, struct item, link)->id, want[i]);
	}
	assert_int_equal(i, 0);
	assert_int_equal(kv_list_empty(head), n == 0);
	assert_int_equal(kv_list_is_singular(head), n == 1);
}

static void test_empty(void **state)
{
	struct kv_list head = KV_LIST_INIT(head);
	struct kv_list h2;

	kv_list_init(&h2);
	assert_true(kv_list_empty(&head));
	assert_true(kv_list_empty(&h2));
	assert_false(kv_list_is_singular(&head));
	assert_ptr_equal(head.next, &head);
	assert_ptr_equal(head.prev, &head);
	check_order(&head, NULL, 0);
}

static void test_add_del_move(void **state)
{
	struct kv_list head;
	struct item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };

	kv_list_init(&head);
	kv_list_add_tail(&head, &it[1].link);
	check_order(&head, (int[]){ 1 }, 1);
	kv_list_add_tail(&head, &it[2].link);
	kv_list_add(&head, &it[0].link);
	kv_list_add_tail(&head, &it[3].link);
	check_order(&head, (int[]){ 0, 1, 2, 3 }, 4);
	assert_ptr_equal(kv_list_first_entry(&head, struct item, link), &it[0]);
	assert_ptr_equal(kv_list_last_entry(&head, struct item, link), &it[3]);

	kv_list_move_tail(&head, &it[1].link);
	check_order(&head, (int[]){ 0, 2, 3, 1 }, 4);
	kv_list_move_tail(&head, &it[1].link);	/* already last */
	check_order(&head, (int[]){ 0, 2, 3, 1 }, 4);

	assert_true(kv_list_is_linked(&it[2].link));
	kv_list_del(&it[2].link);
	assert_false(kv_list_is_linked(&it[2].link));
	assert_null(it[2].link.next);
	assert_null(it[2].link.prev);
	check_order(&head, (int[]){ 0, 3, 1 }, 3);
	kv_list_del(&it[0].link);
	kv_list_del(&it[1].link);
	check_order(&head, (int[]){ 3 }, 1);
	kv_list_del(&it[3].link);
	check_order(&head, NULL, 0);
}

static void test_del_while_walking(void **state)
{
	struct kv_list head = KV_LIST_INIT(head);
	struct item it[10];
	struct item *pos, *tmp;

	for (int i = 0; i < 10; i++) {
		it[i] = (struct item){ .id = i };
		kv_list_add_tail(&head, &it[i].link);
	}
	kv_list_for_each_entry_safe(pos, tmp, &head, link) {
		if (pos->id % 2 == 0)
			kv_list_del(&pos->link);
	}
	check_order(&head, (int[]){ 1, 3, 5, 7, 9 }, 5);
	kv_list_for_each_entry_safe(pos, tmp, &head, link)
		kv_list_del(&pos->link);
	check_order(&head, NULL, 0);
}

/* Random operations against an array holding the same order. */
static void test_random_against_model(void **state)
{
	enum { N = 64, STEPS = 20000 };
	struct kv_list head = KV_LIST_INIT(head);
	struct item it[N];
	int model[N];
	size_t n = 0;
	uint64_t x = 12345;

	for (int i = 0; i < N; i++)
		it[i] = (struct item){ .id = i };
	for (int step = 0; step < STEPS; step++) {
		int i;
		size_t k;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		i = (int)((x >> 33) % N);
		if (!it[i].on) {
			if ((x >> 20) & 1) {
				kv_list_add(&head, &it[i].link);
				memmove(model + 1, model, n * sizeof(model[0]));
				model[0] = i;
			} else {
				kv_list_add_tail(&head, &it[i].link);
				model[n] = i;
			}
			n++;
			it[i].on = true;
		} else {
			for (k = 0; model[k] != i; k++)
				;
			memmove(model + k, model + k + 1, (n - k - 1) * sizeof(model[0]));
			if ((x >> 21) & 1) {
				kv_list_move_tail(&head, &it[i].link);
				model[n - 1] = i;
			} else {
				kv_list_del(&it[i].link);
				n--;
				it[i].on = false;
				assert_false(kv_list_is_linked(&it[i].link));
			}
		}
		check_order(&head, model, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_add_del_move),
		cmocka_unit_test(test_del_while_walking),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
