//! `/metrics`: the Prometheus text exposition of the target's counters, read at scrape time
//! (per-core shards summed here; nothing is counted by the scrape itself).
//!
//! Labels and their bounds (docs/metrics.md lists every series):
//! - `subsystem`, `nsid`: one set per configured namespace (or subsystem); a removed one
//!   leaves the exposition.
//! - `op`: `read`, `write`, `other`; `queue`: `admin`, `io`; `reason`: six refusal kinds;
//!   `event`: three event kinds; `state`: `busy`, `idle`.
//! - `reactor`: one per reactor thread (`[reactor] count` or `cores`).
//! - `pool`, `volume`: one set per running pool and volume on it; `valid`: ten buckets.

mod pools;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use target::engine::Engine;
use target::metrics::{EventKind, IoOp, QueueKind, RefusedConnect, LATENCY_BOUNDS_NS};
use target::namespace::Namespace;

use crate::error::ApiError;
use crate::state::AppState;

/// The scrape, in the Prometheus text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4",
            content_type = "text/plain", body = String),
        (status = 401, description = "No or a wrong token", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let uptime = state.started.elapsed().as_secs_f64();
    let text = state
        .blocking(move |engine| encode(&families(engine, uptime)))
        .await??;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response())
}

fn encode(families: &[MetricFamily]) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(families, &mut buf).map_err(|e| {
        tracing::error!(error = %e, "metrics encoding failed");
        encoding_failed()
    })?;
    String::from_utf8(buf).map_err(|_| encoding_failed())
}

fn encoding_failed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the metrics could not be encoded; see the server's log",
    )
}

/// A family under construction.
struct Family {
    family: MetricFamily,
}

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        Family { family }
    }

    fn push(&mut self, labels: &[(&str, &str)], fill: impl FnOnce(&mut Metric)) {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(v.to_string());
                    l
                })
                .collect(),
        );
        fill(&mut m);
        self.family.mut_metric().push(m);
    }

    fn counter(&mut self, labels: &[(&str, &str)], value: f64) {
        self.push(labels, |m| {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        });
    }

    fn gauge(&mut self, labels: &[(&str, &str)], value: f64) {
        self.push(labels, |m| {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        });
    }

    fn histogram(&mut self, labels: &[(&str, &str)], count: u64, sum: f64, buckets: &[u64]) {
        self.push(labels, |m| {
            let mut h = Histogram::default();
            h.set_sample_count(count);
            h.set_sample_sum(sum);
            let mut cumulative = 0;
            let mut out = Vec::with_capacity(LATENCY_BOUNDS_NS.len());
            // The last bucket (above the largest bound) is the +Inf the encoder adds.
            for (bound, n) in LATENCY_BOUNDS_NS.iter().zip(buckets) {
                cumulative += n;
                let mut b = Bucket::default();
                b.set_upper_bound(*bound as f64 / 1e9);
                b.set_cumulative_count(cumulative);
                out.push(b);
            }
            h.set_bucket(out);
            m.set_histogram(h);
        });
    }

    /// Add the family to the scrape (a family without series is left out: the text
    /// format has no empty family).
    fn done(self, out: &mut Vec<MetricFamily>) {
        if !self.family.get_metric().is_empty() {
            out.push(self.family);
        }
    }
}

const NS: f64 = 1e-9;

/// Every family, read now.
pub fn families(engine: &Engine, uptime_seconds: f64) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    let target = engine.target();

    let mut info = Family::new(
        "ferrofab_build_info",
        "Always 1; the version label names the running build.",
        MetricType::GAUGE,
    );
    info.gauge(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    info.done(&mut out);
    let mut up = Family::new(
        "ferrofab_uptime_seconds",
        "Seconds since the management plane started.",
        MetricType::GAUGE,
    );
    up.gauge(&[], uptime_seconds);
    up.done(&mut out);

    namespace_families(engine, &mut out);

    // Controllers and queues by subsystem (the discovery controller under its NQN).
    let mut by_subsystem: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in target.subsystems() {
        by_subsystem.entry(s.nqn.clone()).or_default();
    }
    for c in target.controllers().iter().filter(|c| !c.is_destroyed()) {
        let e = by_subsystem
            .entry(c.subsystem_nqn().to_string())
            .or_default();
        e.0 += 1;
        e.1 += c.io_queue_count();
    }
    let mut ctrls = Family::new(
        "ferrofab_controllers",
        "Live controllers by subsystem (hosts connected).",
        MetricType::GAUGE,
    );
    let mut queues = Family::new(
        "ferrofab_io_queues",
        "Connected I/O queues by subsystem.",
        MetricType::GAUGE,
    );
    for (nqn, (c, q)) in &by_subsystem {
        ctrls.gauge(&[("subsystem", nqn)], *c as f64);
        queues.gauge(&[("subsystem", nqn)], *q as f64);
    }
    ctrls.done(&mut out);
    queues.done(&mut out);

    let events = target.metrics().sample();
    let mut connects = Family::new(
        "ferrofab_connects_total",
        "Fabrics Connects that created a queue.",
        MetricType::COUNTER,
    );
    for (kind, n) in QueueKind::ALL.iter().zip(events.connects) {
        connects.counter(&[("queue", kind.label())], n as f64);
    }
    connects.done(&mut out);
    let mut refused = Family::new(
        "ferrofab_connects_refused_total",
        "Fabrics Connects refused, by reason.",
        MetricType::COUNTER,
    );
    for (why, n) in RefusedConnect::ALL.iter().zip(events.refused) {
        refused.counter(&[("reason", why.label())], n as f64);
    }
    refused.done(&mut out);
    let mut aens = Family::new(
        "ferrofab_async_events_total",
        "Asynchronous events raised to hosts that enabled them.",
        MetricType::COUNTER,
    );
    for (kind, n) in EventKind::ALL.iter().zip(events.events) {
        aens.counter(&[("event", kind.label())], n as f64);
    }
    aens.done(&mut out);
    let mut kato = Family::new(
        "ferrofab_keep_alive_expiries_total",
        "Controllers torn down because their Keep Alive Timer expired.",
        MetricType::COUNTER,
    );
    kato.counter(&[], events.keep_alive_expiries as f64);
    kato.done(&mut out);

    reactor_families(engine, &mut out);
    pools::pool_families(engine, &mut out);
    out
}

fn namespace_families(engine: &Engine, out: &mut Vec<MetricFamily>) {
    let mut commands = Family::new(
        "ferrofab_namespace_commands_total",
        "Commands completed on a namespace, whatever their status.",
        MetricType::COUNTER,
    );
    let mut errors = Family::new(
        "ferrofab_namespace_errors_total",
        "Commands completed on a namespace with an error status.",
        MetricType::COUNTER,
    );
    let mut bytes = Family::new(
        "ferrofab_namespace_bytes_total",
        "Bytes read or written by commands that succeeded.",
        MetricType::COUNTER,
    );
    let mut latency = Family::new(
        "ferrofab_namespace_latency_seconds",
        "Time from a command's submission to its completion, in the target.",
        MetricType::HISTOGRAM,
    );
    for sub in engine.target().subsystems() {
        for ns in sub.namespaces() {
            record_namespace(
                &sub.nqn,
                &ns,
                [&mut commands, &mut errors, &mut bytes, &mut latency],
            );
        }
    }
    commands.done(out);
    errors.done(out);
    bytes.done(out);
    latency.done(out);
}

/// One namespace's series in the commands, errors, bytes and latency families.
fn record_namespace(
    nqn: &str,
    ns: &Namespace,
    [commands, errors, bytes, latency]: [&mut Family; 4],
) {
    let sample = ns.stats.sample();
    let nsid = ns.nsid.to_string();
    for op in IoOp::ALL {
        let s = sample.op(op);
        let labels = [
            ("subsystem", nqn),
            ("nsid", nsid.as_str()),
            ("op", op.label()),
        ];
        commands.counter(&labels, s.commands as f64);
        errors.counter(&labels, s.errors as f64);
        if op != IoOp::Other {
            bytes.counter(&labels, s.bytes as f64);
        }
        latency.histogram(&labels, s.commands, s.latency_ns as f64 * NS, &s.buckets);
    }
}

fn reactor_families(engine: &Engine, out: &mut Vec<MetricFamily>) {
    let metrics = engine.target().metrics();
    let mut busy = Family::new(
        "ferrofab_reactor_busy_seconds_total",
        "Time of reactor loop iterations that did work.",
        MetricType::COUNTER,
    );
    let mut idle = Family::new(
        "ferrofab_reactor_idle_seconds_total",
        "Time of reactor loop iterations that found no work (incl. sleeping).",
        MetricType::COUNTER,
    );
    let mut polls = Family::new(
        "ferrofab_reactor_polls_total",
        "Reactor loop iterations, busy or idle.",
        MetricType::COUNTER,
    );
    let mut commands = Family::new(
        "ferrofab_reactor_commands_total",
        "Command capsules received by a reactor's connections (admin and I/O).",
        MetricType::COUNTER,
    );
    let mut zero_copy = Family::new(
        "ferrofab_reactor_zero_copy_bytes_total",
        "Data bytes a reactor's connections moved without a copy: NVMe/TCP between the socket \
         and a drive's DMA memory, NVMe/RDMA between the NIC and the backend's registered \
         buffer; sent to the host (c2h) or received from it (h2c).",
        MetricType::COUNTER,
    );
    // TCP's reactors are 0..N-1; the NVMe/RDMA reactors, once an RDMA listener started
    // them, continue the ids (N..): one bounded label, and TCP's series as they always were.
    let reactors = metrics
        .reactors_by_transport()
        .into_iter()
        .flat_map(|(_, reactors)| reactors.iter());
    for (id, r) in reactors.enumerate() {
        let s = r.sample();
        let id = id.to_string();
        let reactor = [("reactor", id.as_str())];
        busy.counter(&reactor, s.busy_ns as f64 * NS);
        idle.counter(&reactor, s.idle_ns as f64 * NS);
        polls.counter(&[("reactor", &id), ("state", "busy")], s.busy_polls as f64);
        polls.counter(&[("reactor", &id), ("state", "idle")], s.idle_polls as f64);
        commands.counter(&reactor, s.commands as f64);
        zero_copy.counter(
            &[("reactor", &id), ("direction", "c2h")],
            s.zero_copy_sent as f64,
        );
        zero_copy.counter(
            &[("reactor", &id), ("direction", "h2c")],
            s.zero_copy_received as f64,
        );
    }
    busy.done(out);
    idle.done(out);
    polls.done(out);
    commands.done(out);
    zero_copy.done(out);
}
