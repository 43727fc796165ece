//! `silt-bench writers`: ingest through a gateway in front of 1, then 3 writers sharing
//! one bucket (moto's S3 server), the same push bodies from the same clients as
//! `silt-bench peers`; lines/s of each and the ratio to one writer. Every process runs
//! on this machine, so the figure says how the split scales on its cores, not on nodes.
//!
//!     cargo build --release --workspace --bins && target/release/silt-bench writers

use super::proc::{load_avg, memory, Proc};
use super::{systems, Res};
use clap::Parser;
use silt_testkit::free_port;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "silt-bench writers",
    about = "Ingest through the gateway with 1 and with 3 writers on one bucket"
)]
pub struct Args {
    /// Writer counts to measure, in this order.
    #[arg(long, default_value = "1,3", value_delimiter = ',')]
    writers: Vec<usize>,
    #[command(flatten)]
    input: super::Input,
    /// Data dirs and logs (cleared before each count).
    #[arg(long, default_value = "target/bench-writers")]
    work_dir: PathBuf,
}

const WRITER: &str = "target: write
limits:
  reject_old_samples: false
  ingestion_rate_mb: 100000
  ingestion_burst_size_mb: 100000
";

/// One writer count's figures.
struct Run {
    writers: usize,
    load_before: Option<f64>,
    push_s: f64,
    /// Peak RSS of the gateway and of the writers together, MB.
    gateway_mb: f64,
    writers_mb: f64,
}

pub fn main(argv: impl IntoIterator<Item = OsString>) -> Res<()> {
    let args: Args = super::parse_args(argv)?;
    if args.writers.contains(&0) {
        return Err("--writers must be at least 1".into());
    }
    let silt = args.input.silt()?;
    let ds = args.input.load()?;
    eprintln!("starting moto (S3) ...");
    let moto = silt_testkit::moto::Moto::start();
    let mut runs = Vec::new();
    for (i, &n) in args.writers.iter().enumerate() {
        let r = measure(&silt, &args.work_dir, &moto.addr(), n, i, &ds.bodies)?;
        eprintln!(
            "{n} writer(s): {:.0} lines/s (gateway {:.0} MB, writers {:.0} MB peak RSS)",
            ds.lines as f64 / r.push_s,
            r.gateway_mb,
            r.writers_mb
        );
        runs.push(r);
    }
    println!("| writers | lines/s | MB/s of lines | vs 1 writer | peak RSS gateway / writers, MB | load before |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let base = runs
        .iter()
        .find(|r| r.writers == 1)
        .map(|r| ds.lines as f64 / r.push_s);
    for r in &runs {
        let rate = ds.lines as f64 / r.push_s;
        println!(
            "| {} | {rate:.0} | {:.1} | {} | {:.0} / {:.0} | {} |",
            r.writers,
            ds.line_bytes as f64 / 1e6 / r.push_s,
            base.map_or("–".into(), |b| format!("{:.2}x", rate / b)),
            r.gateway_mb,
            r.writers_mb,
            r.load_before.map_or("–".into(), |l| format!("{l:.2}"))
        );
    }
    Ok(())
}

/// Starts `n` writers (bucket prefix of their own) and a gateway, pushes every body
/// through the gateway, stops them.
fn measure(
    silt: &Path,
    work: &Path,
    s3: &str,
    n: usize,
    run: usize,
    bodies: &[Vec<Vec<u8>>],
) -> Res<Run> {
    let dir = work.join(format!("{n}-writers"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    let start = |name: &str, cfg: String| -> Res<Proc> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        let file = d.join("silt.yaml");
        std::fs::write(&file, cfg).map_err(|e| e.to_string())?;
        let addr = format!("127.0.0.1:{}", free_port());
        let mut c = Command::new(silt);
        c.arg("server")
            .arg("--config")
            .arg(&file)
            .args(["--listen", &addr, "--data-dir"])
            .arg(d.join("data"))
            .env("RUST_LOG", "warn");
        let mut p = Proc::spawn(name, c, addr, &d.join("silt.log"))?;
        p.wait_ready("/ready", Duration::from_secs(60))?;
        Ok(p)
    };
    let store = format!(
        "storage:\n  object_store:\n    backend: s3\n    s3:\n      bucket: {}\n      prefix: run{run}\n      endpoint: http://{s3}\n      region: us-east-1\n      force_path_style: true\n      access_key_id: test\n      secret_access_key: test\n",
        silt_testkit::moto::BUCKET
    );
    let mut writers = Vec::new();
    for i in 0..n {
        let cfg = format!("{WRITER}{store}cluster:\n  writer_id: w{i}\n");
        writers.push(start(&format!("w{i}"), cfg)?);
    }
    let urls: Vec<String> = writers
        .iter()
        .map(|w| format!("http://{}", w.addr))
        .collect();
    let gw_cfg = format!(
        "target: gateway\ngateway:\n  write_urls: [{}]\n  read_urls: [{}]\n",
        urls.join(", "),
        urls[0]
    );
    let mut gw = start("gateway", gw_cfg)?;
    let load_before = load_avg();
    let push_s = systems::push_bodies(&gw.addr, "/loki/api/v1/push", bodies)?;
    let mb = |p: &Proc| memory(p.pid()).map_or(0.0, |m| m.0 as f64 / 1e6);
    let (gateway_mb, writers_mb) = (mb(&gw), writers.iter().map(mb).sum());
    gw.stop(Duration::from_secs(60))?;
    for w in &mut writers {
        w.stop(Duration::from_secs(300))?;
    }
    Ok(Run {
        writers: n,
        load_before,
        push_s,
        gateway_mb,
        writers_mb,
    })
}
