//! `ferrofab ctl pool`: the layout engine's pools (`list`, `show`) and the volumes on them
//! (`volume-create`, `volume-delete`), over `/api/v1/pools`.

use clap::Subcommand;
use mgmt::pools::{PoolSummary, PoolView, VolumeView};
use reqwest::Method;
use serde_json::json;

use super::client::segment;
use super::show::{fields, size, table};
use super::{delete, get, with_body, Render, Request};

#[derive(Subcommand)]
pub enum PoolCmd {
    /// Every pool: members, usable and mapped bytes, free of its data zones, write
    /// amplification, volumes.
    List,
    /// One pool: block size, zones, bytes written by hosts, GC and metadata, and its volumes
    /// with the namespace that exports each.
    Show { pool: String },
    /// Create a volume on a pool (thin: it takes pool space as it is written). A namespace
    /// whose backend is the volume exports it (REST or the configuration).
    VolumeCreate {
        pool: String,
        /// 1 to 64 characters of A-Z a-z 0-9 . _ -
        name: String,
        /// Bytes or with a unit: 512MiB, 10GiB (binary), 1TB (decimal); a multiple of the
        /// block size.
        #[arg(long, value_parser = target::config::parse_size)]
        size: u64,
        /// 512 or 4096; must be the pool's (default: the pool's).
        #[arg(long)]
        block_size: Option<u32>,
    },
    /// Delete a volume and free its blocks (refused while a namespace exports it).
    VolumeDelete { pool: String, name: String },
}

fn pool_path(pool: &str) -> String {
    format!("pools/{}", segment(pool))
}

/// The request of a `ctl pool` command line.
pub fn request(cmd: PoolCmd) -> Result<Request, String> {
    match cmd {
        PoolCmd::List => get("pools".into(), Render::Pools),
        PoolCmd::Show { pool } => get(pool_path(&pool), Render::Pool),
        PoolCmd::VolumeCreate {
            pool,
            name,
            size,
            block_size,
        } => {
            let mut body = json!({"name": name, "size": size});
            if let Some(b) = block_size {
                body["block_size"] = json!(b);
            }
            with_body(
                Method::POST,
                format!("{}/volumes", pool_path(&pool)),
                body,
                Render::Volume,
            )
        }
        PoolCmd::VolumeDelete { pool, name } => {
            delete(format!("{}/volumes/{}", pool_path(&pool), segment(&name)))
        }
    }
}

/// Write amplification with two decimals.
fn waf(w: f64) -> String {
    format!("{w:.2}")
}

/// What `pool list` prints.
pub fn list(all: &[PoolSummary]) -> String {
    if all.is_empty() {
        return "no pools".into();
    }
    let rows = all
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.members.to_string(),
                size(p.capacity_bytes),
                size(p.mapped_bytes),
                format!("{}/{}", p.free_zones, p.data_zones),
                waf(p.write_amplification),
                p.volumes.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "MEMBERS",
            "USABLE",
            "MAPPED",
            "FREE/DATA ZONES",
            "WAF",
            "VOLUMES",
        ],
        rows,
    )
}

fn exported(v: &VolumeView) -> String {
    v.exported_by
        .as_ref()
        .map_or_else(|| "-".into(), |e| format!("{} nsid {}", e.nqn, e.nsid))
}

/// What `pool show` prints: the figures, then the volumes.
pub fn view(p: &PoolView) -> String {
    let mut out = fields(&[
        ("pool", p.name.clone()),
        ("members", p.members.to_string()),
        ("block size", p.block_size.to_string()),
        ("usable", size(p.capacity_bytes)),
        ("mapped", size(p.mapped_bytes)),
        (
            "zones",
            format!(
                "{} free of {} data zones of {}",
                p.free_zones,
                p.data_zones,
                size(p.zone_capacity_bytes)
            ),
        ),
        (
            "layout",
            format!(
                "over-provisioning {}%, {} journal zones, {} GC, {}",
                p.over_provisioning,
                p.journal_zones,
                p.gc,
                if p.hot_cold_apart {
                    "hot and cold data apart"
                } else {
                    "one stream"
                }
            ),
        ),
        (
            "written",
            format!(
                "host {}, GC {}, metadata {}",
                size(p.host_written_bytes),
                size(p.gc_written_bytes),
                size(p.meta_written_bytes)
            ),
        ),
        ("WAF", waf(p.write_amplification)),
    ]);
    out.push_str("\n\n");
    if p.volumes.is_empty() {
        out.push_str("no volumes");
        return out;
    }
    let rows = p
        .volumes
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                size(v.size_bytes),
                v.block_size.to_string(),
                size(v.mapped_bytes),
                exported(v),
            ]
        })
        .collect();
    out.push_str(&table(
        &["VOLUME", "SIZE", "BLOCK", "MAPPED", "EXPORTED AS"],
        rows,
    ));
    out
}

/// What `pool volume-create` prints: the new volume.
pub fn volume(v: &VolumeView) -> String {
    fields(&[
        ("volume", v.name.clone()),
        (
            "size",
            format!("{} ({} bytes)", size(v.size_bytes), v.size_bytes),
        ),
        ("block size", v.block_size.to_string()),
        ("blocks", v.blocks.to_string()),
        ("mapped", size(v.mapped_bytes)),
        ("exported as", exported(v)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume_json(name: &str, exported: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "size_bytes": 8 << 20, "block_size": 4096, "blocks": 2048,
               "mapped_bytes": 12288, "exported_by": exported})
    }

    #[test]
    fn the_view_shows_figures_and_volumes() {
        let p: PoolView = serde_json::from_value(json!({
            "name": "fast", "members": 2, "over_provisioning": 10, "journal_zones": 4,
            "gc": "greedy", "block_size": 4096, "zone_capacity_bytes": 1 << 20,
            "capacity_bytes": 40 << 20, "mapped_bytes": 12288, "data_zones": 56,
            "free_zones": 55, "host_written_bytes": 12288, "host_read_bytes": 0,
            "gc_written_bytes": 0, "meta_written_bytes": 8192, "write_amplification": 1.6667,
            "zone_resets": 0, "gc_victims": 0, "trimmed_bytes": 0, "checkpoints": 1,
            "map_resident_bytes": 4096, "map_cache_pages": 2036, "map_pages_resident": 1,
            "map_pages_dirty": 1, "recount_done": true, "hot_cold_apart": false,
            "lifetime_dispersion": 0.37, "valid_histogram": [],
            "volumes": [volume_json("vm1", json!({"nqn": "nqn.x:a", "nsid": 1})),
                        volume_json("vm2", json!(null))]
        }))
        .unwrap();
        let text = view(&p);
        for want in [
            "block size: 4096\n",
            "usable:     40 MiB\n",
            "zones:      55 free of 56 data zones of 1 MiB\n",
            "layout:     over-provisioning 10%, 4 journal zones, greedy GC, one stream\n",
            "written:    host 12 KiB, GC 0 B, metadata 8 KiB\n",
            "WAF:        1.67\n\n",
            "VOLUME  SIZE   BLOCK  MAPPED  EXPORTED AS\n",
            "vm1     8 MiB  4096   12 KiB  nqn.x:a nsid 1\n",
            "vm2     8 MiB  4096   12 KiB  -",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
