"""The parent's ``/metrics``: its own few metrics, and every worker's, labelled.

Each worker keeps the usual registry (``server.metrics``: every name as in a
single process) and sends it to the parent once a second
(``server.workers.link``). The parent renders each worker's series with one
more label, ``worker="<index>"``: nothing is summed here, so counters stay
monotonic per worker (a restarted worker's restart from zero is a counter
reset Prometheus understands) and a hot worker's loop lag is not averaged
away. The totals are a query away: ``sum without (worker) (voicebot_active_calls)``.
What the parent shows of a worker is at most one report (about a second) old;
a worker that exited is left out until its replacement reports.

The parent's own metrics carry no ``worker`` label:

- ``voicebot_control_rejections_total{reason}``  the control port is the parent's
- ``voicebot_worker_up{worker}``   1 while that worker runs and reports ready, else 0
- ``voicebot_worker_restarts_total{worker}``  restarts after an unexpected exit
- ``voicebot_announces_dropped_total{worker}``  calls ``/exotel/url`` announced
  that were not passed on to that worker (its queue was full: it does not read)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from server.workers.link import MetricFamily


class _Families(Collector):
    """A fixed set of families, for one render."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class PoolMetrics:
    """The parent's registry, and the families each worker last reported."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.control_rejections = Counter(
            "voicebot_control_rejections", "Refused control HTTP requests, by reason",
            ["reason"], registry=reg,
        )
        self.worker_up = Gauge(
            "voicebot_worker_up", "1 while the worker process runs and reports ready, else 0",
            ["worker"], registry=reg,
        )
        self.worker_restarts = Counter(
            "voicebot_worker_restarts", "Worker processes restarted after an unexpected exit",
            ["worker"], registry=reg,
        )
        self.announces_dropped = Counter(
            "voicebot_announces_dropped", "Announced calls not passed on to a worker "
            "(its queue was full)", ["worker"], registry=reg,
        )
        #: worker index → the families of its latest report
        self.worker_families: dict[int, tuple[MetricFamily, ...]] = {}

    def render(self) -> bytes:
        """Prometheus text: the parent's families, each merged with the workers'
        series of the same name (``worker`` label added)."""
        merged: dict[str, Metric] = {metric.name: metric for metric in self.registry.collect()}
        for index, families in sorted(self.worker_families.items()):
            worker = str(index)
            for family in families:
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit)
                for name, labels, value in family.samples:
                    target.add_sample(name, {**labels, "worker": worker}, value)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(merged.values()))
        return generate_latest(registry)
