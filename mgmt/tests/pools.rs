//! `/api/v1/pools` and the pool series of `/metrics`: a daemon with a zoned-ram pool whose
//! volume a namespace exports; volumes created and deleted over REST; statistics and metrics
//! that follow the writes made through the volume.

use serde_json::json;

mod common;
use common::{Api, Token, SUB};
use reqwest::Method;
use target::Config;

const MIB: u64 = 1 << 20;

/// Pool "fast": two zoned-ram members of 32 zones of 1 MiB (4 KiB blocks), volume "vm1" of
/// 8 MiB exported as namespace 1 of SUB.
fn config() -> Config {
    let text = format!(
        "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
         [[pool]]\nname = \"fast\"\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\n\
         [[pool.member]]\nbackend = {{ kind = \"zoned-ram\", zone_size = \"1MiB\" }}\nsize = \"32MiB\"\nblock_size = 4096\n\
         [[pool.volume]]\nname = \"vm1\"\nsize = \"8MiB\"\n\
         [[subsystem]]\nnqn = \"{SUB}\"\n\
         [[subsystem.namespace]]\nbackend = {{ kind = \"volume\", pool = \"fast\", volume = \"vm1\" }}\n"
    );
    Config::parse(&text, "test").unwrap()
}

/// Write `blocks` 4 KiB blocks from `lba` through namespace `nsid`'s backend (the volume),
/// 64 KiB at a time, then flush.
fn write(api: &Api, nsid: u32, lba: u64, blocks: u64, fill: u8) {
    let ns = api
        .daemon
        .target()
        .subsystem(SUB)
        .unwrap()
        .namespace(nsid)
        .unwrap();
    let chunk = vec![fill; 16 * 4096];
    let mut at = lba;
    while at < lba + blocks {
        let n = (lba + blocks - at).min(16);
        ns.backend
            .write(at, &chunk[..(n * 4096) as usize], false)
            .unwrap();
        at += n;
    }
    ns.backend.flush().unwrap();
}

#[tokio::test]
async fn pools_list_show_and_manage_their_volumes() {
    let api = Api::start_on(config(), None, None).await;
    let list = api.get("/api/v1/pools").await.expect(200);
    let pool = api.daemon.engine().drives().pools().get("fast").unwrap();
    let capacity = pool.capacity_bytes();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let p = &list[0];
    assert_eq!(
        (&p["name"], &p["members"], &p["volumes"], &p["mapped_bytes"]),
        (&json!("fast"), &json!(2), &json!(1), &json!(0))
    );
    assert_eq!(p["capacity_bytes"], capacity);
    assert!(capacity > 8 * MIB && capacity < 64 * MIB, "{capacity}");
    let m = api
        .get("/api/v1/pools/slow")
        .await
        .expect_error(404, "no_such_pool", None);
    assert!(m.contains("slow"), "{m}");
    // A freshly formatted pool: counted, a cache budget (the 8 MiB floor of the default),
    // nothing dirty before any write.
    let stats = pool.stats();
    let p = api.get("/api/v1/pools/fast").await.expect(200);
    assert_eq!(p["recount_done"], true, "{p}");
    assert_eq!(p["map_cache_pages"], stats.map_cache_pages, "{p}");
    assert!(p["map_cache_pages"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["map_pages_dirty"], 0, "{p}");
    // Nothing rewritten yet: no ages, and streams apart until the first verdict.
    assert_eq!(p["hot_cold_apart"], true, "{p}");
    assert_eq!(p["lifetime_dispersion"], serde_json::Value::Null, "{p}");

    write(&api, 1, 10, 3, 0xa5);
    let p = api.get("/api/v1/pools/fast").await.expect(200);
    assert_eq!(p["block_size"], 4096);
    assert_eq!(p["zone_capacity_bytes"], MIB);
    assert_eq!(
        p["over_provisioning"], 15,
        "the default: the config names none"
    );
    assert_eq!(p["journal_zones"], 4);
    assert_eq!(p["gc"], "cost-benefit");
    assert_eq!(p["mapped_bytes"], 3 * 4096);
    assert_eq!(p["host_written_bytes"], 3 * 4096);
    assert!(p["meta_written_bytes"].as_u64().unwrap() > 0, "{p}");
    assert!(p["write_amplification"].as_f64().unwrap() > 1.0, "{p}");
    // The written page of vm1's map is in the cache; the budget has not moved.
    assert!(p["map_pages_resident"].as_u64().unwrap() >= 1, "{p}");
    assert_eq!(p["map_cache_pages"], stats.map_cache_pages, "{p}");
    assert!(
        p["map_pages_dirty"].as_u64().unwrap() <= p["map_pages_resident"].as_u64().unwrap(),
        "{p}"
    );
    assert_eq!(p["recount_done"], true, "{p}");
    let hist = p["valid_histogram"].as_array().unwrap();
    assert_eq!(hist.len(), 10);
    assert_eq!(hist[0]["valid"], "0-10%");
    assert_eq!(hist[9]["valid"], "90-100%");
    assert_eq!(
        p["volumes"],
        json!([{"name": "vm1", "size_bytes": 8 * MIB, "block_size": 4096, "blocks": 2048,
                "mapped_bytes": 3 * 4096, "exported_by": {"nqn": SUB, "nsid": 1}}])
    );

    // Create: 201 with Location; the duplicate is 409, bad values 422, a bad body 400.
    let vols = "/api/v1/pools/fast/volumes";
    let r = api.post(vols, json!({"name": "vm2", "size": "4MiB"})).await;
    assert_eq!(
        r.headers.get("location").unwrap(),
        "/api/v1/pools/fast/volumes/vm2"
    );
    assert_eq!(
        r.expect(201),
        json!({"name": "vm2", "size_bytes": 4 * MIB, "block_size": 4096, "blocks": 1024,
               "mapped_bytes": 0, "exported_by": null})
    );
    let m = api
        .post(vols, json!({"name": "vm2", "size": "4MiB"}))
        .await
        .expect_error(409, "volume_exists", Some("name"));
    assert!(m.contains("vm2"), "{m}");
    let m = api
        .post(vols, json!({"name": "bad name", "size": "4MiB"}))
        .await
        .expect_error(422, "invalid", Some("name"));
    assert!(m.contains("A-Z a-z 0-9"), "{m}");
    let m = api
        .post(vols, json!({"name": "vm3", "size": 5000}))
        .await
        .expect_error(422, "invalid", Some("size"));
    assert!(m.contains("4096-byte block size"), "{m}");
    let m = api
        .post(
            vols,
            json!({"name": "vm3", "size": "4MiB", "block_size": 512}),
        )
        .await
        .expect_error(422, "invalid", Some("block_size"));
    assert!(m.contains("differs from the pool's 4096"), "{m}");
    let m = api
        .post(vols, json!({"name": "vm3", "size": "1GiB"}))
        .await
        .expect_error(422, "pool_refused", None);
    assert!(m.contains("pool fast") && m.contains("capacity"), "{m}");
    api.post(vols, json!({"name": "vm3", "size": "4MiB", "colour": 1}))
        .await
        .expect(400);
    api.post(
        "/api/v1/pools/slow/volumes",
        json!({"name": "vm3", "size": "4MiB"}),
    )
    .await
    .expect_error(404, "no_such_pool", None);
    let ro = api
        .raw(
            Method::POST,
            vols,
            Token::ReadOnly,
            Some(r#"{"name": "vm3", "size": "4MiB"}"#),
        )
        .await;
    assert_eq!(ro.status, 403, "{}", ro.body);

    // Exported, the volume cannot be deleted; the namespace first, then it can.
    let ns = api
        .post(
            &format!("/api/v1/subsystems/{SUB}/namespaces"),
            json!({"backend": {"kind": "volume", "pool": "fast", "volume": "vm2"}}),
        )
        .await
        .expect(201);
    assert_eq!(
        (ns["nsid"].as_u64(), ns["size_bytes"].as_u64()),
        (Some(2), Some(4 * MIB))
    );
    let m = api
        .delete("/api/v1/pools/fast/volumes/vm2")
        .await
        .expect_error(409, "volume_exported", None);
    assert!(m.contains("namespace 2") && m.contains(SUB), "{m}");
    api.delete(&format!("/api/v1/subsystems/{SUB}/namespaces/2"))
        .await
        .expect(200);
    assert_eq!(
        api.delete("/api/v1/pools/fast/volumes/vm2")
            .await
            .expect(200),
        json!({"outcome": "volume_deleted", "pool": "fast", "volume": "vm2"})
    );
    api.delete("/api/v1/pools/fast/volumes/vm2")
        .await
        .expect_error(404, "no_such_volume", None);
    let p = api.get("/api/v1/pools/fast").await.expect(200);
    let names: Vec<_> = p["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(names, [json!("vm1")]);
    // The running configuration holds what the API did.
    assert_eq!(api.daemon.engine().config().pool[0].volume.len(), 1);
    api.stop().await;
}

/// The value of the series written exactly `series` (name and labels as the scrape has them).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

async fn scrape(api: &Api) -> String {
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .bearer_auth(&api.tokens.read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn pool_metrics_follow_the_writes_and_gc() {
    let api = Api::start_on(config(), None, None).await;
    let pool = api.daemon.engine().drives().pools().get("fast").unwrap();
    let l = "{pool=\"fast\"}";
    let text = scrape(&api).await;
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_host_written_bytes_total{l}")),
        0.0
    );
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_write_amplification{l}")),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_usable_bytes{l}")),
        pool.capacity_bytes() as f64
    );
    assert_eq!(
        sample(
            &text,
            "ferrofab_volume_mapped_bytes{pool=\"fast\",volume=\"vm1\"}"
        ),
        0.0
    );
    assert!(
        text.contains("# TYPE ferrofab_pool_gc_victims_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE ferrofab_pool_free_zones gauge"),
        "{text}"
    );
    // A fresh pool: counted, a cache budget, nothing dirty yet.
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_recount_done{l}")),
        1.0
    );
    let budget = sample(&text, &format!("ferrofab_pool_map_cache_pages{l}"));
    assert_eq!(budget, pool.stats().map_cache_pages as f64);
    assert!(budget > 0.0, "{budget}");
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_map_pages_dirty{l}")),
        0.0
    );
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_hot_cold_apart{l}")),
        1.0
    );
    for family in [
        "ferrofab_pool_map_cache_pages",
        "ferrofab_pool_map_pages_resident",
        "ferrofab_pool_map_pages_dirty",
        "ferrofab_pool_recount_done",
        "ferrofab_pool_hot_cold_apart",
    ] {
        assert!(text.contains(&format!("# TYPE {family} gauge")), "{text}");
    }

    // The whole volume, twice: the first copy's zones hold nothing valid any more.
    write(&api, 1, 0, 2048, 1);
    write(&api, 1, 0, 2048, 2);
    let text = scrape(&api).await;
    let s = pool.stats();
    let host = sample(&text, &format!("ferrofab_pool_host_written_bytes_total{l}"));
    assert_eq!(host, (2 * 8 * MIB) as f64);
    let gc = sample(&text, &format!("ferrofab_pool_gc_written_bytes_total{l}"));
    let meta = sample(&text, &format!("ferrofab_pool_meta_written_bytes_total{l}"));
    assert!(meta > 0.0);
    let waf = sample(&text, &format!("ferrofab_pool_write_amplification{l}"));
    assert!((waf - (host + gc + meta) / host).abs() < 1e-9, "{waf}");
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_mapped_bytes{l}")),
        (8 * MIB) as f64
    );
    assert_eq!(
        sample(
            &text,
            "ferrofab_volume_mapped_bytes{pool=\"fast\",volume=\"vm1\"}"
        ),
        (8 * MIB) as f64
    );
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_data_zones{l}")),
        s.data_zones as f64
    );
    assert!(sample(&text, &format!("ferrofab_pool_map_resident_bytes{l}")) > 0.0);
    // Every page of vm1's map was written: they are in the cache (far below its budget, so
    // none was dropped), the dirty ones among them. A page is a 4 KiB block of 8-byte
    // entries, so 2048 blocks take at least 4.
    let resident = sample(&text, &format!("ferrofab_pool_map_pages_resident{l}"));
    assert!(resident >= 4.0, "{resident}");
    assert!(resident <= budget, "{resident} > {budget}");
    let dirty = sample(&text, &format!("ferrofab_pool_map_pages_dirty{l}"));
    assert!(dirty <= resident, "{dirty} > {resident}");
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_map_cache_pages{l}")),
        budget
    );
    assert_eq!(
        sample(&text, &format!("ferrofab_pool_recount_done{l}")),
        1.0
    );
    let buckets: Vec<f64> = (0..10)
        .map(|i| {
            sample(
                &text,
                &format!(
                    "ferrofab_pool_zones_by_valid{{pool=\"fast\",valid=\"{}-{}%\"}}",
                    i * 10,
                    i * 10 + 10
                ),
            )
        })
        .collect();
    // At least the 8 zones of the first copy are full and hold nothing valid (unless GC
    // already took some); the second copy's full zones are all valid.
    assert!(buckets[0] + s.gc_victims as f64 >= 8.0, "{buckets:?}");
    assert!(buckets[9] >= 1.0, "{buckets:?}");

    // GC takes the invalid zones: victims and resets are counted.
    let free_before = s.free_zones;
    tokio::task::spawn_blocking({
        let pool = pool.clone();
        move || pool.collect(usize::MAX).unwrap()
    })
    .await
    .unwrap();
    let text = scrape(&api).await;
    let victims = sample(&text, &format!("ferrofab_pool_gc_victims_total{l}"));
    assert!(victims >= 8.0, "{victims}");
    assert!(sample(&text, &format!("ferrofab_pool_zone_resets_total{l}")) >= victims);
    assert!(sample(&text, &format!("ferrofab_pool_free_zones{l}")) > free_before as f64);
    drop(pool);
    api.stop().await;
}
