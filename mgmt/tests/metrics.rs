//! `/metrics` against what a host did: the per-namespace counters, latency histogram and
//! target-wide events match the commands an NVMe/TCP host (the in-tree initiator) sent.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use fabric::initiator::controller::Controller;
use fabric::initiator::{HostError, HostOptions};
use nvme::Status;
use serde_json::json;

mod common;
use common::{Api, HOST, OTHER, SUB};

/// A scrape: `name` + sorted labels -> value.
struct Scrape {
    samples: BTreeMap<(String, BTreeSet<(String, String)>), f64>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels end with }");
                    let labels = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').expect("label=value");
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
                None => (series.to_string(), BTreeSet::new()),
            };
            assert!(
                samples.insert((name, labels), value).is_none(),
                "series twice: {line}"
            );
        }
        Scrape { samples, text }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let key = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), key)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    /// A namespace series of SUB's namespace `nsid`.
    fn ns(&self, name: &str, nsid: &str, op: &str) -> f64 {
        self.value(name, &[("subsystem", SUB), ("nsid", nsid), ("op", op)])
    }
}

async fn scrape(api: &Api, token: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", api.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, resp.text().await.unwrap())
}

async fn scrape_ok(api: &Api) -> Scrape {
    let (status, ctype, text) = scrape(api, Some(&api.tokens.read_only)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(ctype, "text/plain; version=0.0.4");
    Scrape::parse(text)
}

fn host(hostnqn: &str) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    }
}

#[tokio::test]
async fn counters_match_what_the_host_did() {
    let api = Api::start().await;
    let sub_url = format!("/api/v1/subsystems/{SUB}");
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "allowed_hosts": [HOST],
               "namespaces": [{"backend": "ram", "size": "8MiB"}]}),
    )
    .await
    .expect(201);

    // No token, a wrong one: 401 like every guarded endpoint.
    assert_eq!(scrape(&api, None).await.0, 401);
    assert_eq!(scrape(&api, Some("wrong")).await.0, 401);

    let before = scrape_ok(&api).await;
    assert_eq!(
        before.ns("ferrofab_namespace_commands_total", "1", "write"),
        0.0
    );
    assert_eq!(
        before.value(
            "ferrofab_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    match Controller::connect(api.nvme, SUB, host(OTHER)).await {
        Err(HostError::Connect(s)) => assert_eq!(s, Status::CONNECT_INVALID_HOST.with_dnr()),
        other => panic!("a host not on the list connected: {:?}", other.map(|_| ())),
    }
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let data = Bytes::from(vec![0x5au8; 4096]);
    for i in 0..10u64 {
        let c = ctrl.write(1, 1, i * 8, data.clone(), false).await.unwrap();
        assert!(c.status().is_success());
    }
    for i in 0..5u64 {
        assert_eq!(ctrl.read(1, 1, i * 8, 8).await.unwrap().data, data);
    }
    // Past the end (16384 blocks): LBA Out of Range, counted as a read error.
    let past_end = ctrl.read(1, 1, 16_380, 8).await.unwrap();
    assert_eq!(past_end.status(), Status::LBA_OUT_OF_RANGE.with_dnr());

    let s = scrape_ok(&api).await;
    assert_eq!(
        s.ns("ferrofab_namespace_commands_total", "1", "write"),
        10.0
    );
    assert_eq!(
        s.ns("ferrofab_namespace_bytes_total", "1", "write"),
        40960.0
    );
    assert_eq!(s.ns("ferrofab_namespace_errors_total", "1", "write"), 0.0);
    assert_eq!(s.ns("ferrofab_namespace_commands_total", "1", "read"), 6.0);
    assert_eq!(s.ns("ferrofab_namespace_errors_total", "1", "read"), 1.0);
    assert_eq!(s.ns("ferrofab_namespace_bytes_total", "1", "read"), 20480.0);
    assert_eq!(
        s.ns("ferrofab_namespace_latency_seconds_count", "1", "write"),
        10.0
    );
    let labels = [("subsystem", SUB), ("nsid", "1"), ("op", "write")];
    let le = |b: &str| {
        let mut l = labels.to_vec();
        l.push(("le", b));
        s.value("ferrofab_namespace_latency_seconds_bucket", &l)
    };
    assert_eq!(le("+Inf"), 10.0);
    assert!(le("0.00001") <= le("1"), "buckets are cumulative");
    assert_eq!(le("10"), 10.0, "a RAM write takes less than 10 s");
    assert!(s.ns("ferrofab_namespace_latency_seconds_sum", "1", "write") > 0.0);
    assert_eq!(
        s.value(
            "ferrofab_connects_refused_total",
            &[("reason", "host_not_allowed")]
        ),
        1.0
    );
    assert!(s.value("ferrofab_connects_total", &[("queue", "admin")]) >= 1.0);
    assert!(s.value("ferrofab_connects_total", &[("queue", "io")]) >= 1.0);
    assert_eq!(s.value("ferrofab_controllers", &[("subsystem", SUB)]), 1.0);
    assert_eq!(s.value("ferrofab_io_queues", &[("subsystem", SUB)]), 1.0);
    // One reactor (the default): it received at least the 16 I/O commands.
    assert!(s.value("ferrofab_reactor_commands_total", &[("reactor", "0")]) >= 16.0);
    assert!(s.value("ferrofab_reactor_busy_seconds_total", &[("reactor", "0")]) > 0.0);
    assert!(
        s.value(
            "ferrofab_reactor_polls_total",
            &[("reactor", "0"), ("state", "busy")]
        ) > 0.0
    );
    assert_eq!(s.value("ferrofab_keep_alive_expiries_total", &[]), 0.0);

    // A namespace added live: its series appear, the host's controller got the event.
    let events = |s: &Scrape| {
        s.value(
            "ferrofab_async_events_total",
            &[("event", "namespace_attribute_changed")],
        )
    };
    let events_before = events(&s);
    api.post(
        &format!("{sub_url}/namespaces"),
        json!({"backend": "null", "size": "1MiB"}),
    )
    .await
    .expect(201);
    let s = scrape_ok(&api).await;
    assert_eq!(events(&s), events_before + 1.0);
    assert_eq!(s.ns("ferrofab_namespace_commands_total", "2", "read"), 0.0);

    // Removed: its series leave the exposition.
    api.delete(&format!("{sub_url}/namespaces/2"))
        .await
        .expect(200);
    let s = scrape_ok(&api).await;
    assert_eq!(
        s.get(
            "ferrofab_namespace_commands_total",
            &[("subsystem", SUB), ("nsid", "2"), ("op", "read")]
        ),
        None
    );
    let (status, _, _) = scrape(&api, Some(&api.tokens.admin)).await;
    assert_eq!(status, 200);

    drop(ctrl);
    api.stop().await;
}

/// The NVMe/RDMA reactors, once started, continue the reactor ids after TCP's (`reactor` stays
/// the one label, and TCP's series keep theirs); before, there are none.
#[tokio::test]
async fn rdma_reactors_continue_the_reactor_ids() {
    let api = Api::start().await;
    let s = scrape_ok(&api).await;
    let polls = |s: &Scrape, id: &str| {
        s.get(
            "ferrofab_reactor_polls_total",
            &[("reactor", id), ("state", "idle")],
        )
    };
    assert!(polls(&s, "0").is_some());
    assert_eq!(polls(&s, "1"), None, "one TCP reactor, no RDMA reactor yet");
    // What the RDMA listeners register when their reactors first serve (two reactors here).
    let rdma: Vec<_> = (0..2)
        .map(|_| std::sync::Arc::new(fabric::tcp::reactor_stats::ReactorCounters::default()))
        .collect();
    assert!(api.daemon.target().metrics().set_rdma_reactors(rdma));
    let s = scrape_ok(&api).await;
    for id in ["0", "1", "2"] {
        assert!(polls(&s, id).is_some(), "reactor {id}");
        assert!(s
            .get("ferrofab_reactor_commands_total", &[("reactor", id)])
            .is_some());
    }
    assert_eq!(polls(&s, "3"), None);
    api.stop().await;
}
