"""The order a sweep submits its pods' requests in (collect/proxy.submit_interleaved)."""

from __future__ import annotations

import concurrent.futures

from kubectl_meshdoctor.collect.proxy import PodReader, submit_interleaved


class RecordingPool(concurrent.futures.Executor):
    """Runs nothing; remembers what was submitted, in order."""

    def __init__(self) -> None:
        self.order: list[tuple[str, str]] = []

    def submit(self, fn, /, *args, **kwargs):
        what = args[0]  # PodReader._guarded(what, task)
        self.order.append((fn.__self__.name, what))
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(None)
        return future


def readers(count: int) -> list[PodReader]:
    return [PodReader(lambda: None, "ns", f"pod-{i}", 60.0) for i in range(count)]


def test_one_request_of_each_pod_per_round_server_info_first_the_log_last():
    pool, pods = RecordingPool(), readers(3)
    submit_interleaved(pool, pods, None, 10.0, group=3)
    kinds = [what for what, _ in PodReader(lambda: None, "ns", "x", 1.0).tasks(None, 10.0)]
    rounds = [pool.order[i:i + 3] for i in range(0, len(pool.order), 3)]
    assert len(pool.order) == 3 * len(kinds) and len(rounds) == len(kinds)
    for round_ in rounds:
        assert [pod for pod, _ in round_] == ["pod-0", "pod-1", "pod-2"]  # every pod once per round
    assert {what for _, what in rounds[0]} == {"server_info"}  # config parts may wait for it
    assert {what for _, what in rounds[-1]} == {"access log"}  # its follow-ups wait for server_info
    middle = rounds[1:-1]
    for pod in range(3):  # each pod asks for everything, once
        assert sorted(r[pod][1] for r in middle) == sorted(k for k in kinds if k not in ("server_info", "access log"))
    # Rotated: in a round the pods ask different things, so heavy answers do not all come at once
    # (the three config parts all read "config_dump": a round may show that name twice).
    assert all(len({what for _, what in round_}) >= 2 for round_ in middle)
    assert [r[0][1] for r in middle] != [r[1][1] for r in middle]
    for pod in pods:
        assert len(pod.futures()) == len(kinds)


def test_groups_keep_a_pods_requests_together():
    pool, pods = RecordingPool(), readers(5)
    submit_interleaved(pool, pods, None, 10.0, group=2)
    first_seen = [pod for pod, _ in pool.order]
    last = {pod: max(i for i, p in enumerate(first_seen) if p == pod) for pod in first_seen}
    start = {pod: first_seen.index(pod) for pod in first_seen}
    assert last["pod-1"] < start["pod-2"] and last["pod-3"] < start["pod-4"]  # group by group


def test_one_reader_submits_its_own_requests_in_order():
    pool, (pod,) = RecordingPool(), readers(1)
    submit_interleaved(pool, [pod], None, 10.0)
    order = [what for _, what in pool.order]
    kinds = [what for what, _ in pod.tasks(None, 10.0)]
    assert order[0] == "server_info" and order[-1] == "access log" and sorted(order) == sorted(kinds)


def test_fair_slots_serve_waiters_in_arrival_order():
    import threading
    import time

    from kubectl_meshdoctor.collect.fair_slots import FairSlots

    slots = FairSlots(1)
    served: list[int] = []
    slots.__enter__()  # the one slot is taken: everyone below waits
    threads = []
    for number in range(6):
        def wait(number=number):
            with slots:
                served.append(number)
        thread = threading.Thread(target=wait)
        thread.start()
        threads.append(thread)
        while len(slots._waiters) < number + 1:  # this one is queued before the next one starts
            time.sleep(0.001)
    slots.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert served == list(range(6))
    with slots:  # handed back when nobody waits
        assert slots._free == 0
    assert slots._free == 1
