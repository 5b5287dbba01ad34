//! `ferrofab ctl firmware`: the appliance image (running and previous version, root slots,
//! boot entries, the update job), `firmware update SOURCE` (a signed bundle; `--wait` follows
//! the job to its end) and `firmware reboot`.

use std::time::Duration;

use clap::{Args, Subcommand};
use mgmt::firmware::{FirmwareJobView, FirmwareStage, FirmwareView, RunningView};
use reqwest::Method;
use serde_json::json;

use super::client::Client;
use super::show::{fields, size, table};
use super::{get, parse, with_body, Render, Request};

#[derive(Args)]
pub struct FirmwareArgs {
    #[command(subcommand)]
    command: Option<FirmwareCmd>,
}

#[derive(Subcommand)]
enum FirmwareCmd {
    /// The image (also without a subcommand): running and previous version, root slots,
    /// boot entries with their boot counters, whether updates are taken, the update job.
    Show,
    /// Install a signed update bundle: SOURCE is its directory, an http:// or https:// URL
    /// or an absolute path on the appliance (SHA256SUMS, SHA256SUMS.sig, ferrofab_V.efi,
    /// ferrofab_V.root.raw). Its signature is checked before this returns; the rest runs on
    /// the appliance.
    Update {
        source: String,
        /// Reboot into the new version once it is installed.
        #[arg(long)]
        reboot: bool,
        /// Install a version older than the running one.
        #[arg(long)]
        allow_downgrade: bool,
        /// Print the job's progress until it is installed (exit 0) or failed (exit 1).
        #[arg(long)]
        wait: bool,
    },
    /// Reboot the appliance now (refused while an update installs).
    Reboot,
}

/// The request of a `ctl firmware` command line.
pub fn request(args: FirmwareArgs) -> Result<Request, String> {
    match args.command.unwrap_or(FirmwareCmd::Show) {
        FirmwareCmd::Show => get("firmware".into(), Render::Firmware),
        FirmwareCmd::Update {
            source,
            reboot,
            allow_downgrade,
            wait,
        } => {
            let body =
                json!({"source": source, "reboot": reboot, "allow_downgrade": allow_downgrade});
            let mut req = with_body(
                Method::POST,
                "firmware/update".into(),
                body,
                Render::FirmwareJob,
            )?;
            req.wait = wait;
            Ok(req)
        }
        FirmwareCmd::Reboot => with_body(
            Method::POST,
            "firmware/reboot".into(),
            json!({}),
            Render::Firmware,
        ),
    }
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn or_dash(v: &Option<impl ToString>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

fn stage(s: FirmwareStage) -> &'static str {
    match s {
        FirmwareStage::Verifying => "verifying",
        FirmwareStage::Fetching => "fetching",
        FirmwareStage::Installing => "installing",
        FirmwareStage::Installed => "installed",
        FirmwareStage::Failed => "failed",
        FirmwareStage::Rebooting => "rebooting",
    }
}

/// `12 MiB of 1 GiB (1%)`, or without a total what was done.
fn bytes(job: &FirmwareJobView) -> String {
    match job.bytes_total {
        Some(total) if total > 0 => format!(
            "{} of {} ({}%)",
            size(job.bytes_done),
            size(total),
            job.bytes_done.saturating_mul(100) / total
        ),
        _ => size(job.bytes_done),
    }
}

/// One line for a job.
pub fn job_line(job: &FirmwareJobView) -> String {
    let version = job.version.as_deref().unwrap_or("?");
    let mut line = format!(
        "job {}: {} {version} from {}",
        job.id,
        stage(job.stage),
        job.source
    );
    if job.bytes_done > 0 || job.bytes_total.is_some() {
        line.push_str(&format!(", {}", bytes(job)));
    }
    if let Some(e) = &job.error {
        line.push_str(&format!(": {e}"));
    }
    line
}

/// What `firmware update` prints without `--wait`.
pub fn started(job: &FirmwareJobView) -> String {
    format!(
        "{}\nfollow it with `ferrofab ctl firmware` (or give --wait)",
        job_line(job)
    )
}

/// What `firmware` prints.
pub fn view(v: &FirmwareView) -> String {
    let running = match &v.running {
        Some(r) => format!("{} {}", r.image_id, r.version),
        None => "not a ferrofab image".into(),
    };
    let previous = match &v.previous {
        Some(p) => format!(
            "{} ({}, {})",
            p.version,
            or_dash(&p.device),
            or_dash(&p.boot_entry)
        ),
        None => "-".into(),
    };
    let updates = if v.updates.available {
        "available".to_string()
    } else {
        format!("not available: {}", or_dash(&v.updates.reason))
    };
    let mut pairs = vec![
        ("running", running),
        ("booted entry", or_dash(&v.booted_entry)),
        ("previous", previous),
        ("updates", updates),
    ];
    if v.rebooting {
        pairs.push(("rebooting", "yes".into()));
    }
    pairs.push(("job", v.job.as_ref().map_or("-".into(), job_line)));
    let mut out = fields(&pairs);
    if !v.slots.is_empty() {
        let rows = v
            .slots
            .iter()
            .map(|s| {
                vec![
                    s.device.clone(),
                    s.label.clone(),
                    or_dash(&s.version),
                    yes(s.running),
                ]
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["SLOT", "LABEL", "VERSION", "RUNNING"], rows));
    }
    if !v.boot_entries.is_empty() {
        let rows = v
            .boot_entries
            .iter()
            .map(|e| {
                vec![
                    e.file.clone(),
                    e.version.clone(),
                    format!("{:?}", e.state).to_lowercase(),
                    or_dash(&e.tries_left),
                    or_dash(&e.tries_done),
                    yes(e.booted),
                ]
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(
            &[
                "BOOT ENTRY",
                "VERSION",
                "STATE",
                "TRIES LEFT",
                "DONE",
                "BOOTED",
            ],
            rows,
        ));
    }
    out
}

/// How often `--wait` asks.
const POLL: Duration = Duration::from_millis(500);
/// Failed polls in a row that end the wait.
const MAX_MISSES: u32 = 5;
/// How long `--wait` keeps asking an appliance that does not answer once an update with
/// `--reboot` reached installing: it may be rebooting into it (an appliance under emulation
/// takes minutes).
const REBOOT_WAIT: Duration = Duration::from_secs(600);

/// `--wait`: poll the job started with `answer` until it is installed (or rebooting: the
/// install is done) or failed, printing each change (on stderr with `--json`, which prints
/// the last state of the job).
pub async fn wait(client: &Client, answer: &[u8], json: bool) -> Result<(), String> {
    let mut job: FirmwareJobView = parse(answer)?;
    let id = job.id;
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(job_line(&job));
    let mut shown = (job.stage, progress_step(&job));
    let mut misses = 0;
    let mut unreachable_since: Option<std::time::Instant> = None;
    loop {
        match job.stage {
            FirmwareStage::Installed | FirmwareStage::Rebooting => break,
            FirmwareStage::Failed => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&job).unwrap_or_default());
                }
                return Err(format!(
                    "the update to {} failed: {}",
                    job.version.as_deref().unwrap_or("?"),
                    job.error.as_deref().unwrap_or("no reason given")
                ));
            }
            FirmwareStage::Verifying | FirmwareStage::Fetching | FirmwareStage::Installing => {}
        }
        tokio::time::sleep(POLL).await;
        let bytes = match client.call(Method::GET, "firmware", None).await {
            Ok(b) => {
                misses = 0;
                unreachable_since = None;
                b
            }
            Err(e) => {
                misses += 1;
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                let rebooting = job.reboot && job.stage == FirmwareStage::Installing;
                if misses < MAX_MISSES || (rebooting && since.elapsed() < REBOOT_WAIT) {
                    continue;
                }
                let hint = if rebooting {
                    format!(
                        " (it was installing with --reboot and the appliance has not answered \
                         for {} s; see `ferrofab ctl firmware` once it is back)",
                        since.elapsed().as_secs()
                    )
                } else {
                    String::new()
                };
                return Err(format!(
                    "{e}; the update was last seen {}{hint}",
                    stage(job.stage)
                ));
            }
        };
        let view: FirmwareView = parse(&bytes)?;
        job = match view.job {
            Some(j) if j.id == id => j,
            _ => return restarted(job, view.running.as_ref(), json),
        };
        let now = (job.stage, progress_step(&job));
        if now != shown {
            say(job_line(&job));
            shown = now;
        }
    }
    let version = job.version.as_deref().unwrap_or("?");
    if json {
        println!("{}", serde_json::to_string_pretty(&job).unwrap_or_default());
    } else if job.stage == FirmwareStage::Rebooting {
        println!("{version} is installed; the appliance is rebooting into it");
    } else {
        println!("{version} is installed; it runs after a reboot (`ferrofab ctl firmware reboot`)");
    }
    Ok(())
}

/// The appliance answers without the job: its daemon started again. After an update with
/// `--reboot` that reached installing, that is the reboot (a poll can hang for the whole of
/// it), and the version it runs now says whether the update took.
fn restarted(
    mut job: FirmwareJobView,
    running: Option<&RunningView>,
    json: bool,
) -> Result<(), String> {
    let id = job.id;
    let version = job.version.as_deref().unwrap_or("?");
    let installing = matches!(
        job.stage,
        FirmwareStage::Installing | FirmwareStage::Installed | FirmwareStage::Rebooting
    );
    if !(job.reboot && installing) {
        return Err(format!(
            "the appliance no longer reports job {id} (did the daemon restart?)"
        ));
    }
    match running.map(|r| r.version.as_str()) {
        Some(now) if now == version => {
            if json {
                job.stage = FirmwareStage::Rebooting;
                println!("{}", serde_json::to_string_pretty(&job).unwrap_or_default());
            } else {
                println!("{version} is installed; the appliance rebooted and runs it");
            }
            Ok(())
        }
        now => Err(format!(
            "the appliance restarted during the update to {version} (job {id}, last seen {}) \
             and runs {}",
            stage(job.stage),
            now.unwrap_or("no ferrofab image")
        )),
    }
}

/// Progress in 10% steps (in MiB without a total), so `--wait` prints a line per step.
fn progress_step(job: &FirmwareJobView) -> u64 {
    match job.bytes_total {
        Some(total) if total > 0 => job.bytes_done.saturating_mul(10) / total,
        _ => job.bytes_done >> 26,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::client::{base_url, TokenSource};
    use super::*;

    fn job(stage: FirmwareStage, done: u64, total: Option<u64>) -> FirmwareJobView {
        serde_json::from_value(json!({
            "id": 3, "stage": stage, "version": "0.1.0.3", "source": "http://u/b/",
            "reboot": false, "allow_downgrade": false, "bytes_done": done,
            "bytes_total": total, "error": null, "started_unix_ms": 1,
            "updated_unix_ms": 2, "finished_unix_ms": null
        }))
        .unwrap()
    }

    #[test]
    fn job_lines_say_stage_version_and_progress() {
        let j = job(FirmwareStage::Fetching, 3 << 20, Some(12 << 20));
        assert_eq!(
            job_line(&j),
            "job 3: fetching 0.1.0.3 from http://u/b/, 3 MiB of 12 MiB (25%)"
        );
        assert_eq!(progress_step(&j), 2);
        let mut failed = job(FirmwareStage::Failed, 0, None);
        failed.error = Some("ferrofab_0.1.0.3.root.raw does not match".into());
        assert_eq!(
            job_line(&failed),
            "job 3: failed 0.1.0.3 from http://u/b/: ferrofab_0.1.0.3.root.raw does not match"
        );
    }

    #[test]
    fn the_view_shows_slots_and_entries() {
        let v: FirmwareView = serde_json::from_value(json!({
            "running": {"image_id": "ferrofab", "version": "0.1.0.2"},
            "previous": {"version": "0.1.0.1", "device": "/dev/vda3", "boot_entry": null},
            "booted_entry": "ferrofab_0.1.0.2+2-1.efi",
            "slots": [{"device": "/dev/vda2", "label": "ferrofab_0.1.0.2", "version": "0.1.0.2", "running": true}],
            "boot_entries": [{"file": "ferrofab_0.1.0.2+2-1.efi", "version": "0.1.0.2",
                "state": "indeterminate", "tries_left": 2, "tries_done": 1, "booted": true}],
            "updates": {"available": false, "reason": "no key"},
            "rebooting": false,
            "job": null
        }))
        .unwrap();
        let text = view(&v);
        for want in [
            "running:      ferrofab 0.1.0.2",
            "previous:     0.1.0.1 (/dev/vda3, -)",
            "updates:      not available: no key",
            "job:          -",
            "/dev/vda2  ferrofab_0.1.0.2  0.1.0.2  yes",
            "ferrofab_0.1.0.2+2-1.efi  0.1.0.2  indeterminate  2           1     yes",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }

    /// A management API whose `GET /api/v1/firmware` answers with `views` in turn (the last
    /// one for ever).
    async fn api(views: Vec<serde_json::Value>) -> Client {
        api_after_resets(0, views).await
    }

    /// As [`api`], but the first `resets` connections are dropped unanswered, as QEMU's port
    /// forward does while the appliance behind it reboots.
    async fn api_after_resets(resets: usize, views: Vec<serde_json::Value>) -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            let mut dropped = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                if dropped < resets {
                    dropped += 1;
                    drop(stream);
                    continue;
                }
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let body = views[n.min(views.len() - 1)].to_string();
                n += 1;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            }
        });
        let base = base_url(&format!("http://{addr}")).unwrap();
        Client::new(base, "t".into(), TokenSource::Env, Vec::new()).unwrap()
    }

    fn with_job(j: &FirmwareJobView) -> serde_json::Value {
        json!({"running": null, "previous": null, "booted_entry": null, "slots": [],
               "boot_entries": [], "updates": {"available": true, "reason": null},
               "rebooting": false, "job": j})
    }

    #[tokio::test]
    async fn wait_follows_the_job_to_its_end() {
        let start = job(FirmwareStage::Fetching, 0, Some(100));
        let answer = serde_json::to_vec(&start).unwrap();
        let installing = job(FirmwareStage::Installing, 100, Some(100));
        let installed = job(FirmwareStage::Installed, 100, Some(100));
        let client = api(vec![with_job(&installing), with_job(&installed)]).await;
        wait(&client, &answer, true).await.unwrap();

        let mut failed = job(FirmwareStage::Failed, 40, Some(100));
        failed.error = Some("ferrofab_0.1.0.3.root.raw does not match its SHA-256".into());
        let client = api(vec![with_job(&failed)]).await;
        let e = wait(&client, &answer, true).await.unwrap_err();
        assert_eq!(
            e,
            "the update to 0.1.0.3 failed: ferrofab_0.1.0.3.root.raw does not match its SHA-256"
        );

        // Another job in the answer: this one is gone.
        let mut other = installed;
        other.id = 4;
        let client = api(vec![with_job(&other)]).await;
        let e = wait(&client, &answer, true).await.unwrap_err();
        assert!(e.contains("no longer reports job 3"), "{e}");
    }

    /// With `--reboot`, a poll can hang through the whole reboot: the next answer comes from
    /// the new daemon, without the job. The version it runs says whether the update took.
    #[tokio::test]
    async fn wait_sees_the_reboot_through_the_running_version() {
        let mut installing = job(FirmwareStage::Installing, 100, Some(100));
        installing.reboot = true;
        let answer = serde_json::to_vec(&installing).unwrap();
        let after = |version: &str| {
            let mut v = with_job(&job(FirmwareStage::Installed, 0, None));
            v["job"] = serde_json::Value::Null;
            v["running"] = json!({"image_id": "ferrofab", "version": version});
            v
        };
        let client = api(vec![after("0.1.0.3")]).await;
        wait(&client, &answer, false).await.unwrap();

        // While it reboots the port forward takes connections and drops them: more misses in
        // a row than a wait without --reboot stands.
        let client = api_after_resets(2 * MAX_MISSES as usize, vec![after("0.1.0.3")]).await;
        wait(&client, &answer, false).await.unwrap();

        let client = api(vec![after("0.1.0.2")]).await;
        let e = wait(&client, &answer, false).await.unwrap_err();
        assert_eq!(
            e,
            "the appliance restarted during the update to 0.1.0.3 (job 3, last seen \
             installing) and runs 0.1.0.2"
        );

        // Without --reboot a restart is not expected: the job is lost.
        installing.reboot = false;
        let answer = serde_json::to_vec(&installing).unwrap();
        let client = api(vec![after("0.1.0.3")]).await;
        let e = wait(&client, &answer, false).await.unwrap_err();
        assert!(e.contains("no longer reports job 3"), "{e}");
        // ... and an appliance that stops answering ends the wait after a few misses.
        let client = api_after_resets(2 * MAX_MISSES as usize, vec![after("0.1.0.3")]).await;
        let e = wait(&client, &answer, false).await.unwrap_err();
        assert!(e.contains("the update was last seen installing"), "{e}");
    }
}
