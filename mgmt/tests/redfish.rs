//! The Redfish / Swordfish view at /redfish/v1: built through the REST API (a subsystem with
//! a namespace and an allowed host, a second listener, a connected host), then read back as
//! Redfish resources, compared with what the host sees over NVMe/TCP, and crawled link by
//! link; authentication, read-only methods and the error shapes; drives through adopted
//! controllers (one with no driver of ours, one the driver's model with a SMART / Health log)
//! and one of a fake sysfs that is not exported.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use fabric::initiator::controller::Controller;
use fabric::initiator::HostOptions;
use nvme::backend::ram::RamBackend;
use nvme::backend::{Backend, BackendError};
use nvme::driver::dma::HeapDma;
use nvme::driver::model::{ModelConfig, ModelHealth, SoftController};
use nvme::driver::nvme_driver::{DriverOptions, NvmeDriver};
use nvme::driver::pool::PagePool;
use nvme::log_page::SmartHealth;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use target::drives::{AdoptedController, DriveSettings, Drives};
use target::Config;

use common::sysfs::{FakeNs, FakeSysfs};
use common::{Api, HOST, OTHER, SUB};

const HOST_ID: [u8; 16] = [
    0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
];

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// HTTP Basic: user name, password.
    Basic(&'a str, &'a str),
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.text))
    }

    /// Assert a 200 JSON resource and return it.
    fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.header("content-type"), "application/json");
        assert_eq!(self.header("odata-version"), "4.0");
        self.json()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Assert a Redfish error: status, Base registry message, the one extended message.
    fn error(&self, status: u16, key: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code.starts_with("Base.1.") && code.ends_with(&format!(".{key}")),
            "{body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        let info = &body["error"]["@Message.ExtendedInfo"];
        assert_eq!(info.as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(info[0]["MessageId"], code);
        assert!(info[0]["@odata.type"]
            .as_str()
            .unwrap()
            .starts_with("#Message.v1_"));
        body
    }
}

async fn request(base: &str, method: Method, path: &str, auth: Auth<'_>) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.request(method, format!("{base}{path}"));
    req = match auth {
        Auth::None => req,
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
    };
    let resp = req.send().await.expect("HTTP request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        text: resp.text().await.unwrap(),
    }
}

/// GET with the admin token.
async fn get(api: &Api, path: &str) -> Reply {
    request(
        &api.base,
        Method::GET,
        path,
        Auth::Bearer(&api.tokens.admin),
    )
    .await
}

fn host(hostnqn: &str) -> HostOptions {
    HostOptions {
        hostnqn: hostnqn.to_string(),
        hostid: HOST_ID,
        io_queues: 1,
        ..HostOptions::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every `@odata.id` in `v`.
fn links(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("@odata.id", Value::String(s)) => out.push(s.clone()),
                    _ => links(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| links(x, out)),
        _ => {}
    }
}

/// GET every resource reachable from the service root; each link resolves to a resource
/// naming itself at that URI, with a versioned type (collections: an unversioned one with
/// Members and their count). Returns the URIs visited.
async fn crawl(base: &str, token: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/redfish/v1/".to_string()]);
    while let Some(uri) = queue.pop_front() {
        if !seen.insert(uri.clone()) {
            continue;
        }
        let doc = request(base, Method::GET, &uri, Auth::Bearer(token))
            .await
            .ok();
        assert_eq!(doc["@odata.id"], uri.as_str(), "{doc}");
        let ty = doc["@odata.type"].as_str().expect("@odata.type");
        if ty.ends_with("Collection") {
            let n = doc["Members"].as_array().expect("Members").len();
            assert_eq!(doc["Members@odata.count"], n, "{doc}");
            assert!(doc["Name"].is_string());
        } else {
            assert!(
                ty.contains(".v1_") && doc["Id"].is_string() && doc["Name"].is_string(),
                "{doc}"
            );
        }
        let mut found = Vec::new();
        links(&doc, &mut found);
        queue.extend(found.into_iter().filter(|l| l != &uri));
    }
    seen
}

#[tokio::test]
async fn storage_fabric_and_links_from_the_rest_api() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "serial": "SN-REDFISH-1", "allowed_hosts": [HOST],
               "namespaces": [{"backend": "ram", "size": "64MiB", "block_size": 4096}]}),
    )
    .await
    .expect(201);
    let second = api
        .post(
            "/api/v1/listeners",
            json!({"transport": "tcp", "address": "127.0.0.2:0"}),
        )
        .await
        .expect(201);
    let second: std::net::SocketAddr = second["address"].as_str().unwrap().parse().unwrap();
    let ctrl = Controller::connect(api.nvme, SUB, host(HOST))
        .await
        .unwrap();
    let admin = api.tokens.admin.as_str();
    let storage = format!("/redfish/v1/Storage/{SUB}");

    // The service root and the version object need no credentials.
    let versions = request(&api.base, Method::GET, "/redfish", Auth::None)
        .await
        .ok();
    assert_eq!(versions, json!({"v1": "/redfish/v1/"}));
    let root = request(&api.base, Method::GET, "/redfish/v1", Auth::None)
        .await
        .ok();
    assert_eq!(root["@odata.type"], "#ServiceRoot.v1_16_0.ServiceRoot");
    assert_eq!(root["Storage"]["@odata.id"], "/redfish/v1/Storage");
    assert_eq!(
        root["Links"]["Sessions"]["@odata.id"],
        "/redfish/v1/SessionService/Sessions"
    );

    let collection = get(&api, "/redfish/v1/Storage").await.ok();
    assert_eq!(collection["Members@odata.count"], 1);
    assert_eq!(collection["Members"][0]["@odata.id"], storage.as_str());
    let sub = get(&api, &storage).await.ok();
    assert_eq!(sub["@odata.type"], "#Storage.v1_15_0.Storage");
    assert_eq!(
        (sub["Id"].as_str(), sub["Name"].as_str()),
        (Some(SUB), Some(SUB))
    );
    assert_eq!(
        sub["Identifiers"],
        json!([{"DurableNameFormat": "NQN", "DurableName": SUB}])
    );

    // The namespace: capacity, block size and the identifiers the host reads over the fabric.
    let volume = get(&api, &format!("{storage}/Volumes/1")).await.ok();
    assert_eq!(volume["@odata.type"], "#Volume.v1_9_0.Volume");
    assert_eq!(volume["CapacityBytes"], 64u64 << 20);
    assert_eq!(volume["BlockSizeBytes"], 4096);
    assert_eq!(volume["NVMeNamespaceProperties"]["NamespaceId"], "0x1");
    let descriptors = ctrl.ns_descriptors(1).await.unwrap();
    let nid = |t: u8| descriptors.iter().find(|(k, _)| *k == t).unwrap().1.clone();
    let (eui, nguid) = (nid(1), nid(2));
    let eui_text: Vec<String> = eui.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        volume["Identifiers"][0],
        json!({"DurableNameFormat": "NGUID", "DurableName": hex(&nguid)})
    );
    assert_eq!(
        volume["Identifiers"][1],
        json!({"DurableNameFormat": "EUI", "DurableName": eui_text.join("-")})
    );
    assert_eq!(volume["Identifiers"][2]["DurableNameFormat"], "UUID");
    assert_eq!(
        volume["Links"]["Controllers"],
        json!([{"@odata.id": format!("{storage}/Controllers/{}", ctrl.cntlid())}])
    );

    // The connected host's controller.
    let controllers = get(&api, &format!("{storage}/Controllers")).await.ok();
    assert_eq!(controllers["Members@odata.count"], 1);
    let c = get(&api, &format!("{storage}/Controllers/{}", ctrl.cntlid()))
        .await
        .ok();
    assert_eq!(
        c["@odata.type"],
        "#StorageController.v1_7_0.StorageController"
    );
    assert_eq!(c["NVMeControllerProperties"]["ControllerType"], "IO");
    assert_eq!(c["SerialNumber"], "SN-REDFISH-1");
    assert_eq!(c["Status"]["State"], "Enabled");
    let host_endpoint = format!("/redfish/v1/Fabrics/NVMeoF/Endpoints/{HOST}");
    let first_endpoint = format!(
        "/redfish/v1/Fabrics/NVMeoF/Endpoints/tcp-{}-{}",
        api.nvme.ip(),
        api.nvme.port()
    );
    assert_eq!(
        c["Links"]["Endpoints"],
        json!([{"@odata.id": host_endpoint}, {"@odata.id": first_endpoint}])
    );

    // Endpoints: both listeners with their addresses, the host by NQN and Host ID.
    let fabric = get(&api, "/redfish/v1/Fabrics/NVMeoF").await.ok();
    assert_eq!(fabric["FabricType"], "NVMeOverFabrics");
    let endpoints = get(&api, "/redfish/v1/Fabrics/NVMeoF/Endpoints").await.ok();
    assert_eq!(endpoints["Members@odata.count"], 3);
    for addr in [api.nvme, second] {
        let e = get(
            &api,
            &format!(
                "/redfish/v1/Fabrics/NVMeoF/Endpoints/tcp-{}-{}",
                addr.ip(),
                addr.port()
            ),
        )
        .await
        .ok();
        assert_eq!(e["EndpointProtocol"], "NVMeOverFabrics");
        assert_eq!(
            e["IPTransportDetails"],
            json!([{"TransportProtocol": "TCP", "IPv4Address": {"Address": addr.ip().to_string()},
                    "Port": addr.port()}])
        );
        assert_eq!(e["ConnectedEntities"][0]["EntityRole"], "Target");
        assert_eq!(
            e["ConnectedEntities"][0]["EntityLink"]["@odata.id"],
            storage.as_str()
        );
    }
    let h = get(&api, &host_endpoint).await.ok();
    assert_eq!(
        h["Identifiers"],
        json!([{"DurableNameFormat": "NQN", "DurableName": HOST},
               {"DurableNameFormat": "UUID", "DurableName": "11111111-2222-3333-4444-555555555555"}])
    );
    assert_eq!(h["ConnectedEntities"][0]["EntityRole"], "Initiator");
    assert_eq!(h["Status"]["State"], "Enabled");

    // The access list: the allowed host reaches the volume through both listeners.
    let conn = get(
        &api,
        &format!("/redfish/v1/Fabrics/NVMeoF/Connections/{SUB}"),
    )
    .await
    .ok();
    assert_eq!(conn["ConnectionType"], "Storage");
    assert_eq!(
        conn["Links"]["InitiatorEndpoints"],
        json!([{"@odata.id": host_endpoint}])
    );
    assert_eq!(
        conn["Links"]["TargetEndpoints"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        conn["VolumeInfo"],
        json!([{"Volume": {"@odata.id": format!("{storage}/Volumes/1")},
                "AccessCapabilities": ["Read", "Write"]}])
    );

    // Every link resolves, to a resource that names itself.
    let seen = crawl(&api.base, admin).await;
    for uri in [
        format!("{storage}/Volumes/1"),
        format!("{storage}/Controllers/{}", ctrl.cntlid()),
        first_endpoint.clone(),
        host_endpoint.clone(),
        format!("/redfish/v1/Fabrics/NVMeoF/Connections/{SUB}"),
        "/redfish/v1/Chassis/appliance/Drives".to_string(),
        "/redfish/v1/SessionService/Sessions".to_string(),
    ] {
        assert!(seen.contains(&uri), "{uri} not reached: {seen:?}");
    }

    // An allowed host that is not connected is an endpoint too; a disconnected controller
    // leaves the view.
    api.post(
        &format!("/api/v1/subsystems/{SUB}/hosts"),
        json!({"host": OTHER}),
    )
    .await
    .expect(201);
    let other = get(
        &api,
        &format!("/redfish/v1/Fabrics/NVMeoF/Endpoints/{OTHER}"),
    )
    .await
    .ok();
    assert_eq!(other["Status"]["State"], "Absent");
    let cntlid = ctrl.cntlid();
    ctrl.shutdown().await.unwrap();
    let gone = format!("{storage}/Controllers/{cntlid}");
    for _ in 0..100 {
        if get(&api, &gone).await.status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    get(&api, &gone).await.error(404, "ResourceMissingAtURI");
    api.stop().await;
}

#[tokio::test]
async fn credentials_methods_and_errors() {
    let api = Api::start().await;
    api.post(
        "/api/v1/subsystems",
        json!({"nqn": SUB, "namespaces": [{"backend": "null", "size": "1MiB"}]}),
    )
    .await
    .expect(201);
    let base = api.base.as_str();
    let (admin, read_only) = (api.tokens.admin.as_str(), api.tokens.read_only.as_str());
    let storage = "/redfish/v1/Storage";

    // No or wrong credentials: 401 with both schemes offered.
    for auth in [
        Auth::None,
        Auth::Bearer("not-a-token"),
        Auth::Basic("ferrofab", "not-a-token"),
        Auth::Basic(admin, "x"),
    ] {
        let r = request(base, Method::GET, storage, auth).await;
        r.error(401, "NoValidSession");
        let offered: Vec<&str> = r
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(
            offered.iter().any(|v| v.starts_with("Basic ")),
            "{offered:?}"
        );
        assert!(
            offered.iter().any(|v| v.starts_with("Bearer ")),
            "{offered:?}"
        );
    }
    // Either token, as a bearer token or a Basic password with any user name.
    for auth in [
        Auth::Bearer(admin),
        Auth::Bearer(read_only),
        Auth::Basic("ferrofab", admin),
        Auth::Basic("anyone", read_only),
    ] {
        let doc = request(base, Method::GET, storage, auth).await.ok();
        assert_eq!(doc["Members@odata.count"], 1);
    }
    // No sessions: the service says so, and the collection the service root must link is empty.
    let sessions = request(
        base,
        Method::GET,
        "/redfish/v1/SessionService",
        Auth::Bearer(admin),
    )
    .await
    .ok();
    assert_eq!(sessions["ServiceEnabled"], false);
    let none = request(
        base,
        Method::GET,
        "/redfish/v1/SessionService/Sessions",
        Auth::Bearer(admin),
    )
    .await
    .ok();
    assert_eq!(none["Members@odata.count"], 0);
    // A subsystem without an allow-list: its Connection names no initiator and says why.
    let open = request(
        base,
        Method::GET,
        &format!("/redfish/v1/Fabrics/NVMeoF/Connections/{SUB}"),
        Auth::Bearer(admin),
    )
    .await
    .ok();
    assert_eq!(open["Links"]["InitiatorEndpoints"], json!([]));
    assert!(open["Description"].as_str().unwrap().contains("any host"));
    // Public: /redfish, the service root, $metadata and the OData service document.
    let metadata = request(base, Method::GET, "/redfish/v1/$metadata", Auth::None).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.header("content-type"), "application/xml");
    assert!(metadata
        .text
        .contains("<edmx:Include Namespace=\"Storage.v1_15_0\"/>"));
    assert!(metadata
        .text
        .contains("Extends=\"ServiceRoot.v1_16_0.ServiceContainer\""));
    let odata = request(base, Method::GET, "/redfish/v1/odata", Auth::None)
        .await
        .ok();
    assert_eq!(odata["value"][0]["url"], "/redfish/v1/");
    request(base, Method::GET, "/redfish/v1/", Auth::None)
        .await
        .ok();

    // Read-only: any other method is 405 with Allow, even with the admin token.
    for (method, path) in [
        (Method::POST, storage.to_string()),
        (Method::PATCH, format!("{storage}/{SUB}")),
        (Method::DELETE, format!("{storage}/{SUB}/Volumes/1")),
        (Method::PUT, "/redfish/v1".to_string()),
        (
            Method::POST,
            "/redfish/v1/SessionService/Sessions".to_string(),
        ),
    ] {
        let r = request(base, method, &path, Auth::Bearer(admin)).await;
        r.error(405, "OperationNotAllowed");
        assert_eq!(r.header("allow"), "GET, HEAD");
    }
    // HEAD: the headers of GET, no body.
    let head = request(base, Method::HEAD, storage, Auth::Bearer(read_only)).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), "application/json");
    assert!(head.text.is_empty());

    // Unknown paths: 404 in the Redfish shape, naming the URI.
    for path in [
        "/redfish/v1/Nothing".to_string(),
        format!("{storage}/nqn.2026-01.io.ferrofab:none"),
        format!("{storage}/{SUB}/Volumes/2"),
        format!("{storage}/{SUB}/Volumes/01"),
        format!("{storage}/{SUB}/Controllers/70000"),
        "/redfish/v1/Fabrics/NVMeoF/Endpoints/tcp-192.0.2.1-4420".to_string(),
        "/redfish/v1/Chassis/appliance/Drives/0000:00:04.0".to_string(),
        "/redfish/v1/Storage//".to_string(),
        "/redfish/v1/%ff".to_string(),
        "/redfish/v2".to_string(),
    ] {
        let body = request(base, Method::GET, &path, Auth::Bearer(admin))
            .await
            .error(404, "ResourceMissingAtURI");
        assert_eq!(
            body["error"]["@Message.ExtendedInfo"][0]["MessageArgs"][0],
            path.as_str()
        );
    }
    // Query options the service does not implement: 501.
    request(
        base,
        Method::GET,
        "/redfish/v1/Storage?$expand=*",
        Auth::Bearer(admin),
    )
    .await
    .error(501, "QueryNotSupported");
    // A trailing slash and percent-encoding name the same resource.
    let encoded = format!("{storage}/{}/", SUB.replace(':', "%3A"));
    let doc = request(base, Method::GET, &encoded, Auth::Bearer(admin))
        .await
        .ok();
    assert_eq!(doc["Id"], SUB);
    api.stop().await;
}

/// A controller whose namespaces are RAM, adopted as the nvme-vfio drive at a PCI address.
struct RamController;

impl AdoptedController for RamController {
    fn open_namespace(&self, _nsid: u32) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(RamBackend::new(4 << 20, 512)?))
    }

    fn shut_down(&self) {}
}

/// The driver's software controller, started, with the SMART / Health values `health`.
fn model_driver(health: ModelHealth) -> Arc<NvmeDriver<Arc<HeapDma>>> {
    let memory = Arc::new(HeapDma::new(8 << 20, 1 << 32));
    let ctrl = SoftController::new(ModelConfig::default(), Arc::clone(&memory));
    ctrl.set_health(health);
    let pool = PagePool::new(memory, 4096).unwrap();
    NvmeDriver::start(Box::new(ctrl), pool, DriverOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_namespaces_are_opened_on() {
    const PCI: &str = "0000:00:04.0";
    // Our driver runs this one; its SMART / Health log warns of a worn-out drive.
    const MODEL_PCI: &str = "0000:00:05.0";
    // On the kernel's driver, no namespace opened on it.
    const IDLE_PCI: &str = "0000:00:06.0";
    let config = Config::parse(
        &format!(
            "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n\
             [[subsystem]]\nnqn = \"{SUB}\"\n\n\
             [[subsystem.namespace]]\nbackend = {{ kind = \"nvme-vfio\", pci = \"{PCI}\", nsid = 1 }}\n\n\
             [[subsystem.namespace]]\nbackend = {{ kind = \"nvme-vfio\", pci = \"{PCI}\", nsid = 2 }}\n\n\
             [[subsystem.namespace]]\nbackend = \"ram\"\nsize = \"1MiB\"\n\n\
             [[subsystem.namespace]]\nbackend = {{ kind = \"nvme-vfio\", pci = \"{MODEL_PCI}\", nsid = 1 }}\n"
        ),
        "test",
    )
    .unwrap();
    let model = model_driver(ModelHealth {
        critical_warning: SmartHealth::WARN_SPARE | SmartHealth::WARN_RELIABILITY,
        available_spare: 5,
        percentage_used: 30,
        ..ModelHealth::default()
    });
    let sysfs = FakeSysfs::new();
    sysfs.nvme_function(IDLE_PCI, Some("nvme"));
    let ns = FakeNs {
        name: "nvme0n1",
        nsid: 1,
        bytes: 256 << 20,
        block_size: 4096,
        zoned: "host-managed",
    };
    sysfs.kernel_controller("nvme0", IDLE_PCI, "ffzns0", &[ns]);
    let drives = Arc::new(Drives::new(DriveSettings::default()).with_sysfs(sysfs.root()));
    drives.adopt(PCI, Box::new(RamController));
    drives.adopt(MODEL_PCI, Box::new(Arc::clone(&model)));
    let api = Api::start_on(config, Some(drives), None).await;
    let tokens = api.tokens.clone();
    let base = api.base.clone();
    let auth = Auth::Basic("ferrofab", &tokens.read_only);
    let drive_uri = format!("/redfish/v1/Chassis/appliance/Drives/{PCI}");
    let storage = format!("/redfish/v1/Storage/{SUB}");

    let collection = request(
        &base,
        Method::GET,
        "/redfish/v1/Chassis/appliance/Drives",
        auth,
    )
    .await
    .ok();
    let model_uri = format!("/redfish/v1/Chassis/appliance/Drives/{MODEL_PCI}");
    let idle_uri = format!("/redfish/v1/Chassis/appliance/Drives/{IDLE_PCI}");
    let all = json!([{"@odata.id": drive_uri}, {"@odata.id": model_uri}, {"@odata.id": idle_uri}]);
    assert_eq!(collection["Members"], all);
    // Not exported: waiting for a namespace, with what the kernel's driver shows.
    let idle = request(&base, Method::GET, &idle_uri, auth).await.ok();
    assert_eq!(
        (
            &idle["Status"],
            &idle["SerialNumber"],
            &idle["CapacityBytes"],
            &idle["Links"]["Volumes"]
        ),
        (
            &json!({"State": "StandbyOffline"}),
            &json!("ffzns0"),
            &json!(256 << 20),
            &json!([])
        ),
        "{idle}"
    );
    assert!(
        idle["Description"]
            .as_str()
            .unwrap()
            .contains("not exported"),
        "{idle}"
    );
    let drive = request(&base, Method::GET, &drive_uri, auth).await.ok();
    assert_eq!(drive["@odata.type"], "#Drive.v1_17_0.Drive");
    assert_eq!(
        (drive["Id"].as_str(), drive["Protocol"].as_str()),
        (Some(PCI), Some("NVMe"))
    );
    // No driver of ours, no log: no health, no identity; the capacity of what is served.
    assert_eq!(drive["Status"], json!({"State": "Enabled"}));
    assert_eq!(drive["CapacityBytes"], 8 << 20);
    for absent in ["Model", "SerialNumber", "PredictedMediaLifeLeftPercent"] {
        assert!(drive.get(absent).is_none(), "{absent}: {drive}");
    }
    // The model: its identity, and health from its SMART / Health log.
    let m = request(&base, Method::GET, &model_uri, auth).await.ok();
    assert_eq!(
        (&m["Model"], &m["SerialNumber"], &m["Revision"]),
        (
            &json!("ferrofab soft controller"),
            &json!("FERROFAB-MODEL-0001"),
            &json!("1.0")
        ),
        "{m}"
    );
    assert_eq!(m["CapacityBytes"], 1024 * 4096);
    assert_eq!(
        m["Status"],
        json!({"State": "Enabled", "Health": "Critical"})
    );
    assert_eq!(m["FailurePredicted"], true);
    assert_eq!(m["PredictedMediaLifeLeftPercent"], 70);
    assert_eq!(
        drive["Links"]["Volumes"],
        json!([{"@odata.id": format!("{storage}/Volumes/1")},
               {"@odata.id": format!("{storage}/Volumes/2")}])
    );
    let sub = request(&base, Method::GET, &storage, auth).await.ok();
    assert_eq!(
        sub["Drives"],
        json!([{"@odata.id": drive_uri}, {"@odata.id": model_uri}])
    );
    assert_eq!(sub["Drives@odata.count"], 2);
    let on_drive = request(&base, Method::GET, &format!("{storage}/Volumes/2"), auth)
        .await
        .ok();
    assert_eq!(on_drive["CapacityBytes"], 4 << 20);
    assert_eq!(
        on_drive["Links"]["Drives"],
        json!([{"@odata.id": drive_uri}])
    );
    let in_ram = request(&base, Method::GET, &format!("{storage}/Volumes/3"), auth)
        .await
        .ok();
    assert_eq!(in_ram["Links"]["Drives"], json!([]));
    let chassis = request(&base, Method::GET, "/redfish/v1/Chassis/appliance", auth)
        .await
        .ok();
    assert_eq!(chassis["Links"]["Drives"], all);
    let seen = crawl(&base, &tokens.admin).await;
    for uri in [&drive_uri, &model_uri, &idle_uri] {
        assert!(seen.contains(uri), "{uri}: {seen:?}");
    }
    // A controller that is gone reads no log: offline and critical.
    model.shutdown().unwrap();
    let m = request(&base, Method::GET, &model_uri, auth).await.ok();
    assert_eq!(
        m["Status"],
        json!({"State": "UnavailableOffline", "Health": "Critical"})
    );
    assert!(m.get("PredictedMediaLifeLeftPercent").is_none(), "{m}");
    api.stop().await;
}
