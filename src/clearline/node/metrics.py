"""Prometheus metrics of one node (its own registry, so tests can run two nodes in a process)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
)


AGE_BUCKETS_US = tuple(
    ms * 1000 for ms in (0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12.5, 15, 20, 25, 50, 100, 250, 500)
) + tuple(s * 1_000_000 for s in (1, 2.5, 5, 10, 30, 60, 300))
_AGE_BOUNDS = numpy.asarray(AGE_BUCKETS_US, dtype=numpy.float64)


class RecordAges(Collector):
    """How old received telemetry records are when something happens to the message
    carrying them (its time less each record's own `at`): a histogram counted a message at
    a time, since hundreds of records a millisecond are too many to observe one by one;
    and, if `stamp` names a gauge, when it last happened."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        documentation: str,
        stamp: tuple[str, str] | None = None,
    ) -> None:
        self._name, self._documentation, self._stamp = name, documentation, stamp
        self._counts = numpy.zeros(len(AGE_BUCKETS_US) + 1, dtype=numpy.int64)
        self._sum_us = 0
        self._last_us = 0
        registry.register(self)

    def add(self, ats_us: Sequence[int] | NDArray[Any], now_us: int) -> None:
        """Records whose own times are `ats_us`, at `now_us`."""
        self._last_us = now_us
        # Ages in float64: an `at` near 2**63 less the time is out of int64's range.
        ages = now_us - numpy.asarray(ats_us, dtype=numpy.float64)
        # A record stamped ahead of our clock (the sender's runs ahead) is counted as age 0,
        # not as a negative age that would pull the sum below zero.
        numpy.maximum(ages, 0.0, out=ages)
        # Bucket i holds the ages in (bound i-1, bound i], as a Prometheus histogram does.
        buckets = numpy.searchsorted(_AGE_BOUNDS, ages, side="left")
        self._counts += numpy.bincount(buckets, minlength=len(self._counts))
        self._sum_us += int(ages.sum())

    def collect(self) -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
        cumulative, buckets = 0, []
        for bound, count in zip((*AGE_BUCKETS_US, None), self._counts.tolist(), strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound is None else f"{bound / 1e6:g}", cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum_us / 1e6
        )
        if self._stamp is not None:
            yield GaugeMetricFamily(*self._stamp, value=self._last_us / 1e6)


class NodeMetrics:
    def __init__(self, side: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"side": side}
        self.link_state = Gauge(
            "clearline_link_state",
            "Hotline link: 0 down, 1 degraded, 2 up",
            registry=self.registry,
        )
        self.rtt = Histogram(
            "clearline_heartbeat_rtt_seconds",
            "Heartbeat round trip",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.clarification = Histogram(
            "clearline_clarification_seconds",
            "Query to answer or expiry",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.messages = Counter(
            "clearline_messages",
            "Signed messages by direction and kind",
            ["direction", "kind"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "clearline_rejections",
            "Frames the session rejected, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "clearline_refusals",
            "Connections refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.handshakes = Gauge(
            "clearline_handshakes_in_progress",
            "Peer connections accepted and still in their TLS handshake ([limits] max_handshakes)",
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "clearline_tls_reloads",
            "TLS certificate reloads on SIGHUP, by outcome (reloaded, or failed: old ones kept)",
            ["outcome"],
            registry=self.registry,
        )
        self.telemetry_records = Counter(
            "clearline_telemetry_records",
            "Asset records carried in Telemetry, by direction",
            ["direction"],
            registry=self.registry,
        )
        self.telemetry_age = RecordAges(
            self.registry,
            "clearline_telemetry_age_seconds",
            "Received telemetry records: commit time less the record's own time",
            # When the last of them was committed: a benchmark reads its end from here
            # rather than by asking the node often, which would cost the node it measures.
            (
                "clearline_telemetry_last_commit_timestamp_seconds",
                "Wall time of the last commit of received telemetry records (0: none yet)",
            ),
        )
        self.telemetry_verified_age = RecordAges(
            self.registry,
            "clearline_telemetry_verified_age_seconds",
            "Received telemetry records: the time their message was verified (before it is "
            "committed) less the record's own time",
        )
        self.feed_frames = Counter(
            "clearline_feed_frames",
            "Frames read from telemetry feeds: taken, or skipped (by clearline.feed.REASONS)",
            ["outcome"],
            registry=self.registry,
        )
        self.registry_assets = Gauge(
            "clearline_registry_assets",
            "Own assets in the registry (at most [limits] max_assets)",
            registry=self.registry,
        )
        self.registry_evicted = Gauge(
            "clearline_registry_evicted",
            "Own assets dropped from the registry since the node started, least recently "
            "published first, to keep it within [limits] max_assets",
            registry=self.registry,
        )
        self.feed_unsent = Counter(
            "clearline_feed_records_unsent",
            "Feed records taken into the registry while the link was down, so not sent",
            registry=self.registry,
        )
        self.inconsistent_checkpoints = Counter(
            "clearline_inconsistent_checkpoints",
            "Peer checkpoints whose consistency proof failed (a split view)",
            registry=self.registry,
        )
        self.witness_submissions = Counter(
            "clearline_witness_submissions",
            "Checkpoints submitted to a witness, by witness and outcome",
            ["witness", "outcome"],
            registry=self.registry,
        )
        self.quorum_missing = Counter(
            "clearline_witness_quorum_missing",
            "Checkpoints (own or the peer's) without a quorum of witness cosignatures",
            ["log"],
            registry=self.registry,
        )
        self.split_views = Counter(
            "clearline_split_views",
            "Split views a witness revealed (another root for a size), by whose log",
            ["log"],
            registry=self.registry,
        )
        self.bad_cosignatures = Counter(
            "clearline_bad_cosignatures",
            "Cosignatures the peer attached that are malformed or do not verify",
            registry=self.registry,
        )
        self.peer_authority_changes = Counter(
            "clearline_peer_authority_changes",
            "Times the peer's gate policy or authority roster hash changed",
            ["what"],
            registry=self.registry,
        )
        self.human_decisions = Counter(
            "clearline_human_decisions",
            "Human acts put to the gate, by whether their approvals counted",
            ["verdict"],
            registry=self.registry,
        )
        self.log_entries = Gauge(
            "clearline_log_entries",
            "Entries committed to the log",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "clearline_log_commit_seconds",
            "One group commit (one fsync)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_batch = Histogram(
            "clearline_log_commit_batch",
            "Entries per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=self.registry,
        )
        self.info = Gauge("clearline_node_info", "This node", ["side"], registry=self.registry)
        self.info.labels(**labels).set(1)

    def committed(self, entries: int, seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        self.commit_batch.observe(entries)
        self.log_entries.inc(entries)
