//! `/api/v1/pools`: pools of zoned drives with their statistics (capacity, zones, bytes
//! written by hosts, GC and metadata, write amplification, how full the full zones still
//! are), and the volumes on them, created and deleted through the engine.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use target::config::{exporter, ByteSize, Config, GcKind, VolumeConfig};
use target::engine::{Action, Engine};
use target::layout::Pool;
use utoipa::ToSchema;

use crate::backend::Size;
use crate::error::{ApiError, ErrorBody, FieldScope};
use crate::extract::{ApiJson, ApiPath};
use crate::outcome::OutcomeView;
use crate::state::{location, path_segment, AppState};

/// `{pool}/volumes/{volume}`.
#[derive(Debug, Deserialize)]
pub(crate) struct VolumePath {
    pub(crate) pool: String,
    pub(crate) volume: String,
}

/// A pool in the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolSummary {
    pub name: String,
    pub members: usize,
    /// Bytes volumes can hold in all (after over-provisioning and GC's reserve).
    pub capacity_bytes: u64,
    /// Bytes of volume blocks written and not deallocated.
    pub mapped_bytes: u64,
    pub free_zones: u64,
    pub data_zones: u64,
    /// (host + GC + metadata bytes written) / host bytes written; 1 before any write.
    pub write_amplification: f64,
    pub volumes: usize,
}

/// A pool, its statistics and its volumes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    pub name: String,
    pub members: usize,
    /// Percent of the data zones kept back for GC, as the pool was formatted (a pool
    /// formatted without one named keeps 15%).
    pub over_provisioning: u32,
    pub journal_zones: u32,
    /// `cost-benefit` or `greedy`.
    pub gc: String,
    /// The members' logical block size (every volume's).
    pub block_size: u32,
    /// Writable bytes per zone.
    pub zone_capacity_bytes: u64,
    pub capacity_bytes: u64,
    pub mapped_bytes: u64,
    /// Zones that hold (or will hold) volume data, over every member.
    pub data_zones: u64,
    pub free_zones: u64,
    pub host_written_bytes: u64,
    pub host_read_bytes: u64,
    /// Bytes GC copied out of its victims.
    pub gc_written_bytes: u64,
    /// Bytes of metadata written: journal, checkpoints, superblocks, map pages and zone
    /// footers.
    pub meta_written_bytes: u64,
    pub write_amplification: f64,
    pub zone_resets: u64,
    pub gc_victims: u64,
    pub trimmed_bytes: u64,
    pub checkpoints: u64,
    /// DRAM the map takes: pages in the cache and the page directory.
    pub map_resident_bytes: u64,
    /// The map cache's budget in map pages: the pool's `map_cache` (default 128 MiB per TiB
    /// of usable capacity, at least 8 MiB) over the DRAM a page takes. Dirty pages may
    /// exceed it until they are written back.
    pub map_cache_pages: u64,
    /// Map pages in the cache now.
    pub map_pages_resident: u64,
    /// Map pages in the cache changed since they were last written to the pool (waiting for
    /// write-back).
    pub map_pages_dirty: u64,
    /// Whether the valid counts are complete: false while the background recount of the map
    /// that follows a recovery runs (until then `mapped_bytes`, the pool's and its
    /// volumes', counts only the map pages it has visited, and background GC waits); true
    /// for a freshly formatted pool and once the recount is done.
    pub recount_done: bool,
    /// Whether young and old data are written to zones of their own. The pool separates
    /// them while the ages at which hosts rewrite blocks are spread wider than random
    /// rewrites would spread them (`lifetime_dispersion` above 1.5: a block's age then tells
    /// how long it will live), and writes everything to one stream, which leaves GC more
    /// room, once they are not (under 1.25).
    pub hot_cold_apart: bool,
    /// The squared coefficient of variation of the ages (in pool writes) at which host
    /// writes replaced blocks lately: about 1 for uniform random writes, near 0 for
    /// sequential rewrites, well above 1 where some data is rewritten far more often than
    /// the rest; null before any block was rewritten.
    pub lifetime_dispersion: Option<f64>,
    /// Full zones by the share of their capacity still valid: `0-10%` up to `90-100%`.
    pub valid_histogram: Vec<ValidBucket>,
    pub volumes: Vec<VolumeView>,
}

/// Full zones with `valid` of their capacity still valid data.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ValidBucket {
    /// `0-10%`, `10-20%`, … `90-100%`.
    pub valid: String,
    pub zones: u64,
}

/// A volume on a pool.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct VolumeView {
    pub name: String,
    pub size_bytes: u64,
    pub block_size: u32,
    pub blocks: u64,
    /// Bytes written and not deallocated (what the volume takes of the pool).
    pub mapped_bytes: u64,
    /// The namespace that exports it, if one does.
    pub exported_by: Option<VolumeExportView>,
}

/// A namespace exporting a volume.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct VolumeExportView {
    pub nqn: String,
    pub nsid: u32,
}

/// A volume to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeRequest {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// A multiple of the block size, at most the pool's capacity.
    #[schema(value_type = crate::backend::SizeSchema)]
    pub size: Size,
    /// 512 or 4096; must be the pool's (its members'); default: the pool's.
    pub block_size: Option<u32>,
}

/// The labels of the valid-data histogram's ten buckets.
pub fn bucket_label(i: usize) -> String {
    format!("{}-{}%", i * 10, i * 10 + 10)
}

fn no_such_pool(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_pool",
        format!("pool {name} does not exist"),
    )
}

fn summary(config: &Config, pool: &Pool) -> PoolSummary {
    let s = pool.stats();
    let bs = u64::from(s.block_size);
    PoolSummary {
        name: pool.name().to_string(),
        members: members(config, pool.name()),
        capacity_bytes: pool.capacity_bytes(),
        mapped_bytes: s.mapped_blocks * bs,
        free_zones: s.free_zones,
        data_zones: s.data_zones,
        write_amplification: s.waf(),
        volumes: pool.volumes().len(),
    }
}

fn members(config: &Config, pool: &str) -> usize {
    config
        .pool
        .iter()
        .find(|p| p.name == pool)
        .map_or(0, |p| p.member.len())
}

fn view(config: &Config, pool: &Pool) -> PoolView {
    let s = pool.stats();
    let bs = u64::from(s.block_size);
    let pc = config.pool.iter().find(|p| p.name == pool.name());
    let volumes = pool
        .volumes()
        .into_iter()
        .map(|v| VolumeView {
            exported_by: exporter(&config.subsystem, pool.name(), Some(&v.name)).map(
                |(nqn, nsid, _)| VolumeExportView {
                    nqn: nqn.to_string(),
                    nsid,
                },
            ),
            size_bytes: v.blocks * u64::from(v.block_size),
            block_size: v.block_size,
            blocks: v.blocks,
            mapped_bytes: v.mapped_blocks * u64::from(v.block_size),
            name: v.name,
        })
        .collect();
    PoolView {
        name: pool.name().to_string(),
        members: members(config, pool.name()),
        over_provisioning: s.over_provisioning,
        journal_zones: pc.map_or(0, |p| p.journal_zones),
        gc: match pc.map(|p| p.gc) {
            Some(GcKind::Greedy) => "greedy",
            Some(GcKind::CostBenefit) | None => "cost-benefit",
        }
        .to_string(),
        block_size: s.block_size,
        zone_capacity_bytes: s.zone_cap_blocks * bs,
        capacity_bytes: pool.capacity_bytes(),
        mapped_bytes: s.mapped_blocks * bs,
        data_zones: s.data_zones,
        free_zones: s.free_zones,
        host_written_bytes: s.host_write_blocks * bs,
        host_read_bytes: s.host_read_blocks * bs,
        gc_written_bytes: s.gc_write_blocks * bs,
        meta_written_bytes: s.meta_write_blocks * bs,
        write_amplification: s.waf(),
        zone_resets: s.zone_resets,
        gc_victims: s.gc_victims,
        trimmed_bytes: s.trimmed_blocks * bs,
        checkpoints: s.checkpoints,
        map_resident_bytes: s.map_resident_bytes,
        map_cache_pages: s.map_cache_pages,
        map_pages_resident: s.map_pages_resident,
        map_pages_dirty: s.map_pages_dirty,
        recount_done: s.counted,
        hot_cold_apart: s.hot_cold_apart,
        lifetime_dispersion: s.lifetime_dispersion,
        valid_histogram: s
            .valid_histogram
            .iter()
            .enumerate()
            .map(|(i, &zones)| ValidBucket {
                valid: bucket_label(i),
                zones,
            })
            .collect(),
        volumes,
    }
}

fn one(engine: &Engine, name: &str) -> Result<PoolView, ApiError> {
    let pool = engine
        .drives()
        .pools()
        .get(name)
        .ok_or_else(|| no_such_pool(name))?;
    Ok(view(&engine.config(), &pool))
}

/// The running pools, by name.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools",
    responses(
        (status = 200, description = "The pools", body = [PoolSummary]),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<PoolSummary>>, ApiError> {
    state
        .blocking(|engine| {
            let config = engine.config();
            let list = engine
                .drives()
                .pools()
                .list()
                .iter()
                .map(|(pool, _)| summary(&config, pool))
                .collect();
            Json(list)
        })
        .await
}

/// One pool: its statistics and volumes.
#[utoipa::path(get, path = "/api/v1/pools/{pool}", tag = "pools",
    params(("pool" = String, Path, description = "Pool name")),
    responses(
        (status = 200, description = "The pool", body = PoolView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PoolView>, ApiError> {
    state
        .blocking(move |engine| one(engine, &name).map(Json))
        .await?
}

/// Create a volume on a pool (thin: it takes pool space as it is written). Export it with a
/// namespace whose backend is `{"kind": "volume", "pool": …, "volume": …}`.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/volumes", tag = "pools",
    params(("pool" = String, Path, description = "Pool name")),
    request_body = VolumeRequest,
    responses(
        (status = 201, description = "Created; Location names it", body = VolumeView,
            headers(("Location" = String, description = "URL of the new volume"))),
        (status = 400, description = "Malformed request body", body = ErrorBody),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "The pool has a volume of that name", body = ErrorBody),
        (status = 422, description = "Bad name, size or block size, or larger than the pool holds (field named)", body = ErrorBody),
    ))]
pub(crate) async fn create_volume(
    State(state): State<AppState>,
    ApiPath(pool): ApiPath<String>,
    ApiJson(req): ApiJson<VolumeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let name = req.name.clone();
    let action = Action::CreateVolume {
        pool: pool.clone(),
        volume: VolumeConfig {
            name: req.name,
            size: ByteSize(req.size.0),
            block_size: req.block_size,
        },
    };
    let (at, vol) = (pool.clone(), name.clone());
    let created = state
        .apply(action, FieldScope::Plain, move |engine, _| {
            one(engine, &at)?
                .volumes
                .into_iter()
                .find(|v| v.name == vol)
                .ok_or_else(|| no_such_pool(&at))
        })
        .await
        .map_err(unprocessable)?;
    let url = format!(
        "/api/v1/pools/{}/volumes/{}",
        path_segment(&pool),
        path_segment(&name)
    );
    Ok((StatusCode::CREATED, location(&url), Json(created)))
}

/// Values the body's syntax allows but a volume cannot have are 422, as the layout engine's
/// own refusals are (a 400 is a body that does not parse).
fn unprocessable(mut e: ApiError) -> ApiError {
    if e.status == StatusCode::BAD_REQUEST && e.code == "invalid" && e.field.is_some() {
        e.status = StatusCode::UNPROCESSABLE_ENTITY;
    }
    e
}

/// Delete a volume and free its blocks; refused while a namespace exports it.
#[utoipa::path(delete, path = "/api/v1/pools/{pool}/volumes/{volume}", tag = "pools",
    params(("pool" = String, Path, description = "Pool name"),
           ("volume" = String, Path, description = "Volume name")),
    responses(
        (status = 200, description = "Deleted", body = OutcomeView),
        (status = 401, description = "No or a wrong token", body = ErrorBody),
        (status = 403, description = "Read-only token", body = ErrorBody),
        (status = 404, description = "No such pool or volume", body = ErrorBody),
        (status = 409, description = "A namespace exports the volume (remove it first)", body = ErrorBody),
    ))]
pub(crate) async fn delete_volume(
    State(state): State<AppState>,
    ApiPath(VolumePath { pool, volume }): ApiPath<VolumePath>,
) -> Result<Json<OutcomeView>, ApiError> {
    state
        .apply(
            Action::DeleteVolume { pool, volume },
            FieldScope::Plain,
            |_, outcome| Ok(Json(outcome.into())),
        )
        .await
}
