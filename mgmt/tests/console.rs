//! What the web console stands on: its static shell (no token, no data), the token's role,
//! the live statistics stream, the event record, the drives and the zone map — each checked
//! against what an NVMe/TCP host (the in-tree initiator) did.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fabric::initiator::controller::Controller;
use fabric::initiator::{HostError, HostOptions};
use nvme::backend::Backend;
use nvme::driver::dma::HeapDma;
use nvme::driver::model::{Fault, ModelConfig, ModelHealth, NsModel, SoftController};
use nvme::driver::nvme_driver::{DriverOptions, NvmeDriver};
use nvme::driver::pool::PagePool;
use nvme::log_page::SmartHealth;
use nvme::Status;
use reqwest::Method;
use serde_json::{json, Value};
use target::drives::{DriveSettings, Drives};
use target::Config;

mod common;
use common::sysfs::{FakeNs, FakeSysfs};
use common::{Api, Token, HOST, OTHER, SUB};

fn host(hostnqn: &str) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        io_queues: 1,
        ..HostOptions::default()
    }
}

async fn plain(api: &Api, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}{path}", api.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_shell_loads_without_a_token_and_every_data_endpoint_refuses_it() {
    let api = Api::start().await;
    let shell = plain(&api, "/", None).await;
    assert_eq!(shell.status(), 200);
    let h = shell.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(h["x-frame-options"], "DENY");
    let text = shell.text().await.unwrap();
    assert!(
        text.contains("id=\"login-form\""),
        "the shell holds the log-in form"
    );
    for (path, ctype) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        (
            "/console/pages/dashboard.js",
            "text/javascript; charset=utf-8",
        ),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let r = plain(&api, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], ctype, "{path}");
    }
    api.raw(Method::GET, "/console/missing.js", Token::None, None)
        .await
        .expect_error(404, "not_found", None);
    api.raw(Method::POST, "/", Token::None, None)
        .await
        .expect_error(405, "method_not_allowed", None);

    for path in [
        "/api/v1/session",
        "/api/v1/events",
        "/api/v1/drives",
        "/api/v1/system",
        "/api/v1/subsystems",
        "/api/v1/controllers",
        "/api/v1/listeners",
    ] {
        api.raw(Method::GET, path, Token::None, None)
            .await
            .expect_error(401, "unauthorized", Some("Authorization"));
        api.raw(Method::GET, path, Token::Raw("not-a-token"), None)
            .await
            .expect_error(401, "unauthorized", Some("Authorization"));
    }
    let stream = reqwest::Client::new()
        .get(format!("{}/api/v1/stats/stream", api.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);

    let admin = api.get("/api/v1/session").await.expect(200);
    assert_eq!(admin, json!({"role": "admin", "can_change": true}));
    let ro = api
        .raw(Method::GET, "/api/v1/session", Token::ReadOnly, None)
        .await
        .expect(200);
    assert_eq!(ro, json!({"role": "read-only", "can_change": false}));
    let body = json!({"nqn": SUB}).to_string();
    api.raw(
        Method::POST,
        "/api/v1/subsystems",
        Token::ReadOnly,
        Some(&body),
    )
    .await
    .expect_error(403, "forbidden", None);
    api.stop().await;
}

/// The `stats` events of an event stream, as they arrive.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(api: &Api) -> Result<Events, reqwest::Response> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/stats/stream", api.base))
            .bearer_auth(&api.tokens.read_only)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            return Err(response);
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Events {
            response,
            buffer: String::new(),
        })
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.contains("event: stats") {
                    let data = block
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .expect("a data line");
                    return serde_json::from_str(data).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .expect("the stream goes on");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reports_what_a_host_does_and_its_clients_are_bounded() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "allowed_hosts": [HOST],
               "namespaces": [{"backend": "ram", "size": "8MiB"}, {"backend": "null", "size": "8MiB"}]}),
    )
    .await
    .expect(201);
    // Without Accept: text/event-stream, a finite refusal.
    api.get("/api/v1/stats/stream")
        .await
        .expect_error(406, "not_acceptable", Some("Accept"));

    let mut events = Events::open(&api)
        .await
        .unwrap_or_else(|r| panic!("{}", r.status()));
    let ctrl = Arc::new(
        Controller::connect(api.nvme, SUB, host(HOST))
            .await
            .unwrap(),
    );
    let data = Bytes::from(vec![0xa5u8; 4096]);
    // Writes to namespace 1 for 2.5 s, so at least one full second of the stream has them.
    let writer = {
        let ctrl = Arc::clone(&ctrl);
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + Duration::from_millis(2500);
            let mut n = 0u64;
            while tokio::time::Instant::now() < until {
                let c = ctrl
                    .write(1, 1, (n % 1024) * 8, data.clone(), false)
                    .await
                    .unwrap();
                assert!(c.status().is_success());
                n += 1;
            }
            n
        })
    };
    let mut busiest = Value::Null;
    for _ in 0..3 {
        let e = events.next().await;
        assert!(e["interval_seconds"].as_f64().unwrap() > 0.5, "{e}");
        if e["total"]["write_iops"].as_f64().unwrap()
            > busiest["total"]["write_iops"].as_f64().unwrap_or(0.0)
        {
            busiest = e;
        }
    }
    let written = writer.await.unwrap();
    assert!(written > 0);
    let total = &busiest["total"];
    assert!(total["write_iops"].as_f64().unwrap() > 1.0, "{busiest}");
    assert_eq!(total["read_iops"], 0.0, "{busiest}");
    // Every write moved 4 KiB.
    let per_write =
        total["write_bytes_per_second"].as_f64().unwrap() / total["write_iops"].as_f64().unwrap();
    assert!((per_write - 4096.0).abs() < 1.0, "{busiest}");
    let p50 = total["latency_p50_us"].as_f64().unwrap();
    let p99 = total["latency_p99_us"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{busiest}");
    let namespaces = busiest["namespaces"].as_array().unwrap();
    assert_eq!(namespaces.len(), 2, "{busiest}");
    assert_eq!(namespaces[0]["subsystem"], SUB);
    assert_eq!(
        namespaces[0]["rates"]["write_iops"], total["write_iops"],
        "namespace 1 did all of it"
    );
    assert_eq!(namespaces[1]["rates"]["write_iops"], 0.0);
    assert_eq!(namespaces[1]["rates"]["latency_p50_us"], Value::Null);
    let reactors = busiest["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 1, "one reactor by default: {busiest}");
    let busy = reactors[0]["busy_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&busy) && busy > 0.0, "{busiest}");
    assert!(reactors[0]["commands_per_second"].as_f64().unwrap() >= 1.0);
    let hosts = busiest["hosts"].as_array().unwrap();
    assert!(
        hosts
            .iter()
            .any(|h| h["host_nqn"] == HOST && h["subsystem_nqn"] == SUB && h["io_queues"] == 1),
        "{busiest}"
    );
    // Quiet again: the next full second has no writes.
    let _ = events.next().await;
    let quiet = events.next().await;
    assert_eq!(quiet["total"]["write_iops"], 0.0, "{quiet}");
    assert_eq!(quiet["total"]["latency_p99_us"], Value::Null);

    // At most MAX_STREAMS at once: one is open, 15 more fit, the next is refused.
    let mut more = Vec::new();
    for _ in 1..mgmt::live::MAX_STREAMS {
        more.push(
            Events::open(&api)
                .await
                .unwrap_or_else(|r| panic!("{}", r.status())),
        );
    }
    let refused = Events::open(&api).await.err().expect("one too many");
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    drop(more.pop());
    // The slot frees when the server notices the client left (its next event).
    let mut reopened = None;
    for _ in 0..30 {
        if let Ok(e) = Events::open(&api).await {
            reopened = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reopened.is_some(), "a closed stream's slot is given back");
    Arc::into_inner(ctrl)
        .expect("the writer let go of the controller")
        .shutdown()
        .await
        .unwrap();
    // Open streams do not hold up the server's shutdown.
    tokio::time::timeout(Duration::from_secs(10), api.stop())
        .await
        .expect("the server stops with streams open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_record_shows_connects_refusals_and_changes() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "allowed_hosts": [HOST],
               "namespaces": [{"backend": "ram", "size": "8MiB"}]}),
    )
    .await
    .expect(201);
    api.post(
        &format!("/api/v1/subsystems/{SUB}/hosts"),
        json!({"host": "nqn.bad"}),
    )
    .await
    .expect_error(400, "invalid", Some("host"));
    api.delete(&format!("/api/v1/subsystems/{SUB}/hosts/{OTHER}"))
        .await
        .expect_error(404, "no_such_host", None);
    match Controller::connect(api.nvme, SUB, host(OTHER)).await {
        Err(HostError::Connect(_)) => {}
        other => panic!("a host not on the list connected: {:?}", other.map(|_| ())),
    }
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    ctrl.shutdown().await.unwrap();

    let got = api.get("/api/v1/events").await.expect(200);
    assert_eq!(got["capacity"], 256);
    let events = got["events"].as_array().unwrap();
    let find = |category: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["category"] == category)
            .collect()
    };
    let added = find("change");
    assert!(
        added[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("subsystem {SUB} added")),
        "{got}"
    );
    assert_eq!(added[0]["subsystem"], SUB);
    let refused = find("change_refused");
    assert_eq!(
        refused.len(),
        1,
        "the bad NQN never reached the engine: {got}"
    );
    assert_eq!(refused[0]["severity"], "warning");
    assert!(refused[0]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("revoke host {OTHER} on {SUB} refused")));
    let connect_refused = find("connect_refused");
    assert_eq!(connect_refused.len(), 1, "{got}");
    assert_eq!(connect_refused[0]["host"], OTHER);
    assert_eq!(connect_refused[0]["subsystem"], SUB);
    let connected = find("connected");
    assert_eq!(connected.len(), 1, "{got}");
    assert_eq!(connected[0]["host"], HOST);
    let cntlid = connected[0]["cntlid"].clone();
    // The host's shutdown closes the admin queue: the controller goes.
    let mut gone = None;
    for _ in 0..50 {
        let now = api.get("/api/v1/events").await.expect(200);
        gone = now["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["category"] == "disconnected")
            .cloned();
        if gone.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = gone.expect("the disconnect is recorded");
    assert_eq!((&gone["cntlid"], &gone["host"]), (&cntlid, &json!(HOST)));
    // Times are wall-clock milliseconds, numbers increase by one.
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(events[0]["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);

    // `after`: only what is newer; a number from before a restart: everything.
    let latest = got["latest_seq"].as_u64().unwrap();
    assert_eq!(latest, *seqs.last().unwrap());
    let newer = api
        .get(&format!("/api/v1/events?after={latest}"))
        .await
        .expect(200);
    assert!(newer["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["seq"].as_u64().unwrap() > latest));
    let all_again = api.get("/api/v1/events?after=999999").await.expect(200);
    assert_eq!(all_again["events"][0]["seq"], events[0]["seq"]);
    for bad in ["-1", "9223372036854775808", "x"] {
        api.get(&format!("/api/v1/events?after={bad}"))
            .await
            .expect_error(400, "invalid", Some("after"));
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_are_listed_with_their_states_and_write_pointers() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [
            {"backend": "ram", "size": "4MiB"},
            {"backend": {"kind": "zoned-ram", "zone_size": "1MiB", "max_open": 2},
             "size": "16MiB", "block_size": 4096}]}),
    )
    .await
    .expect(201);
    let ns = api
        .get(&format!("/api/v1/subsystems/{SUB}/namespaces/2"))
        .await
        .expect(200);
    assert_eq!(ns["zoned"], true);
    assert_eq!(ns["nguid"].as_str().unwrap().len(), 32);
    assert_eq!(ns["eui64"].as_str().unwrap().len(), 16);
    assert_eq!(ns["uuid"].as_str().unwrap().len(), 36);
    // A host writes 5 blocks at zone 2's write pointer.
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let c = ctrl
        .write(1, 2, 512, Bytes::from(vec![1u8; 5 * 4096]), false)
        .await
        .unwrap();
    assert!(c.status().is_success(), "{:?}", c.status());
    let zones = api
        .get(&format!("/api/v1/subsystems/{SUB}/namespaces/2/zones"))
        .await
        .expect(200);
    assert_eq!(
        (
            &zones["zone_count"],
            &zones["zone_size"],
            &zones["block_size"]
        ),
        (&json!(16), &json!(256), &json!(4096))
    );
    assert_eq!(zones["max_open"], 2);
    let list = zones["zones"].as_array().unwrap();
    assert_eq!(list.len(), 16);
    assert_eq!(
        list[2],
        json!({"zslba": 512, "state": "implicitly-opened", "write_pointer": 517, "capacity": 256})
    );
    assert_eq!(list[3]["state"], "empty");
    // A full zone has no write pointer.
    let fill = Bytes::from(vec![2u8; 128 * 4096]);
    for at in [768u64, 896] {
        let c = ctrl.write(1, 2, at, fill.clone(), false).await.unwrap();
        assert!(c.status().is_success(), "{:?}", c.status());
    }
    let zones = api
        .get(&format!(
            "/api/v1/subsystems/{SUB}/namespaces/2/zones?from=3&count=1"
        ))
        .await
        .expect(200);
    assert_eq!(
        zones["zones"],
        json!([{"zslba": 768, "state": "full", "write_pointer": null, "capacity": 256}])
    );
    let page = api
        .get(&format!(
            "/api/v1/subsystems/{SUB}/namespaces/2/zones?from=14&count=5"
        ))
        .await
        .expect(200);
    assert_eq!(page["from"], 14);
    assert_eq!(page["zones"].as_array().unwrap().len(), 2);
    let at = format!("/api/v1/subsystems/{SUB}/namespaces");
    api.get(&format!("{at}/1/zones"))
        .await
        .expect_error(409, "not_zoned", None);
    api.get(&format!("{at}/9/zones"))
        .await
        .expect_error(404, "no_such_namespace", None);
    api.get(&format!("{at}/2/zones?from=16"))
        .await
        .expect_error(400, "invalid", Some("from"));
    api.get(&format!("{at}/2/zones?count=0"))
        .await
        .expect_error(400, "invalid", Some("count"));
    api.get(&format!("{at}/2/zones?count=x"))
        .await
        .expect_error(400, "invalid", Some("count"));
    api.get(&format!("{at}/2/zones?from=9223372036854775808"))
        .await
        .expect_error(400, "invalid", Some("from"));
    ctrl.shutdown().await.unwrap();
    api.stop().await;
}

async fn get_json(url: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /api/v1/drives` of the model drive below, which the browser test serves to its Drives
/// page.
const DRIVES_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/console-test/drives-model.json"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_show_what_their_driver_reports() {
    const PCI: &str = "0000:7f:00.0";
    const UNEXPORTED: &str = "0000:80:00.0";
    let config = Config::parse(
        &format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[subsystem]]\nnqn = \"{SUB}\"\n\n\
             [[subsystem.namespace]]\nnsid = 4\n\
             backend = {{ kind = \"nvme-vfio\", pci = \"{PCI}\", nsid = 2 }}\n\n\
             [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n"
        ),
        "test",
    )
    .unwrap();
    // The driver's software controller with two namespaces, as an adopted nvme-vfio drive.
    let model = ModelConfig {
        namespaces: vec![
            NsModel {
                block_size: 4096,
                blocks: 1024,
                zoned: None,
            },
            NsModel {
                block_size: 512,
                blocks: 8192,
                zoned: None,
            },
        ],
        ..ModelConfig::default()
    };
    let memory = Arc::new(HeapDma::new(16 << 20, 1 << 32));
    let ctrl = SoftController::new(model, Arc::clone(&memory));
    let pool = PagePool::new(memory, 4096).unwrap();
    let options = DriverOptions {
        io_queues: 2,
        owned_queues: 0,
        queue_depth: 64,
        timeout: Duration::from_secs(10),
    };
    let driver = NvmeDriver::start(Box::new(ctrl.clone()), pool, options).unwrap();
    // A drive that has run warm for a while and done some I/O: 1 MiB written in eight
    // commands (2048 units of 512 bytes: 3 data units), 64 KiB read in one (1 data unit).
    ctrl.set_health(ModelHealth {
        critical_warning: SmartHealth::WARN_TEMPERATURE,
        temperature_kelvin: 351,
        percentage_used: 3,
        power_cycles: 12,
        power_on_hours: 1234,
        unsafe_shutdowns: 1,
        ..ModelHealth::default()
    });
    let on_drive = driver.namespace(1).unwrap();
    Backend::write(&*on_drive, 0, &vec![0x5a; 1 << 20], false).unwrap();
    Backend::read(&*on_drive, 0, &mut vec![0; 64 << 10]).unwrap();
    drop(on_drive);
    // The bus holds it on vfio-pci, and a drive on the kernel's driver that is not exported.
    let sysfs = FakeSysfs::new();
    sysfs.nvme_function(PCI, Some("vfio-pci"));
    sysfs.nvme_function(UNEXPORTED, Some("nvme"));
    let ns = FakeNs {
        name: "nvme0n1",
        nsid: 1,
        bytes: 1 << 30,
        block_size: 4096,
        zoned: "none",
    };
    sysfs.kernel_controller("nvme0", UNEXPORTED, "S5GXNF0R100001", &[ns]);
    let drives = Arc::new(Drives::new(DriveSettings::default()).with_sysfs(sysfs.root()));
    drives.adopt(PCI, Box::new(driver));
    let api = Api::start_on(config, Some(drives), None).await;
    let tokens = api.tokens.clone();
    let url = format!("{}/api/v1/drives", api.base);
    let got = get_json(&url, &tokens.read_only).await;
    let drives = got.as_array().unwrap();
    assert_eq!(drives.len(), 2, "{got}");
    let d = &drives[0];
    assert_eq!(
        (&d["exported"], &d["pci"], &d["driver_bound"]),
        (&json!(true), &json!(PCI), &json!("vfio-pci"))
    );
    let idle = &drives[1];
    assert_eq!(
        (
            &idle["id"],
            &idle["exported"],
            &idle["driver"],
            &idle["serial"]
        ),
        (
            &json!(UNEXPORTED),
            &json!(false),
            &Value::Null,
            &json!("S5GXNF0R100001")
        ),
        "{got}"
    );
    assert_eq!(idle["namespaces"][0]["device"], "/dev/ng0n1");
    assert_eq!(
        (
            &d["id"],
            &d["driver"],
            &d["model"],
            &d["serial"],
            &d["firmware"]
        ),
        (
            &json!(PCI),
            &json!("nvme-vfio"),
            &json!("ferrofab soft controller"),
            &json!("FERROFAB-MODEL-0001"),
            &json!("1.0")
        ),
        "{got}"
    );
    let health = &d["health"];
    assert_eq!(health["state"], "ok");
    assert_eq!(health["controller_resets"], 0);
    assert_eq!(health["io_queues"], 2);
    assert_eq!(health["queue_entries"], 64);
    // The SMART / Health log, read from the drive for the answer.
    let smart = &health["smart_log"];
    assert_eq!(health["smart_log_unavailable"], Value::Null);
    assert_eq!(
        (
            &smart["temperature_kelvin"],
            &smart["critical_warning"],
            &smart["warnings"],
            &smart["severity"],
            &smart["failure_predicted"]
        ),
        (
            &json!(351),
            &json!(2),
            &json!(["temperature"]),
            &json!("warning"),
            &json!(false)
        ),
        "{got}"
    );
    let celsius = smart["temperature_celsius"].as_f64().unwrap();
    assert!((celsius - 77.85).abs() < 1e-9, "{celsius}");
    assert_eq!(health["temperature_celsius"], smart["temperature_celsius"]);
    assert_eq!(
        (
            &smart["available_spare_percent"],
            &smart["available_spare_threshold_percent"],
            &smart["percentage_used"]
        ),
        (&json!(100), &json!(10), &json!(3))
    );
    assert_eq!(
        (
            &smart["data_units_written"],
            &smart["data_written_bytes"],
            &smart["host_write_commands"],
            &smart["data_units_read"],
            &smart["data_read_bytes"],
            &smart["host_read_commands"]
        ),
        (
            &json!(3),
            &json!(1_536_000),
            &json!(8),
            &json!(1),
            &json!(512_000),
            &json!(1)
        ),
        "{got}"
    );
    assert_eq!(
        (
            &smart["power_cycles"],
            &smart["power_on_hours"],
            &smart["unsafe_shutdowns"],
            &smart["media_errors"],
            &smart["error_log_entries"]
        ),
        (&json!(12), &json!(1234), &json!(1), &json!(0), &json!(0))
    );
    // Both of the drive's namespaces; the second one is exported as namespace 4.
    assert_eq!(d["capacity_bytes"], 1024 * 4096 + 8192 * 512);
    let ns = d["namespaces"].as_array().unwrap();
    assert_eq!(ns.len(), 2);
    assert_eq!(ns[0]["exported_as"], json!([]));
    assert_eq!(
        (&ns[1]["nsid"], &ns[1]["blocks"], &ns[1]["block_size"]),
        (&json!(2), &json!(8192), &json!(512))
    );
    assert_eq!(ns[1]["exported_as"], json!([{"subsystem": SUB, "nsid": 4}]));
    // The browser test shows this answer on its Drives page (its daemon has no drive).
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(DRIVES_FIXTURE, text).unwrap();
    }
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(DRIVES_FIXTURE).unwrap())
        .expect("the fixture is JSON");
    assert_eq!(
        fixture, got,
        "{DRIVES_FIXTURE} is not what the API answers; regenerate it with \
         UPDATE_FIXTURES=1 cargo test --profile ci -p mgmt --test console"
    );
    // A drive that refuses the log: no log, the reason, and the drive still runs.
    ctrl.inject(Fault::Fail {
        qid: 0,
        opcode: 0x02,
        status: Status::INTERNAL_ERROR,
    });
    let got = get_json(&url, &tokens.read_only).await;
    let health = &got[0]["health"];
    assert_eq!(
        (
            &health["state"],
            &health["smart_log"],
            &health["temperature_celsius"]
        ),
        (&json!("ok"), &Value::Null, &Value::Null),
        "{got}"
    );
    let why = health["smart_log_unavailable"].as_str().unwrap();
    assert!(
        why.contains("SMART / Health log not read") && why.contains("0x02"),
        "{why}"
    );
    // The next read is answered again, and counts what was done since.
    let got = get_json(&url, &tokens.read_only).await;
    assert_eq!(
        got[0]["health"]["smart_log"]["host_read_commands"],
        json!(1),
        "{got}"
    );
    api.stop().await;
}
