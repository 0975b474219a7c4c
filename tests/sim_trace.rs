//! Trace workloads: the importer's column mapping, its counts of kept and
//! skipped requests, malformed rows, the deterministic share, and the real
//! openb trace when it is present.

use std::path::{Path, PathBuf};

use gpuclaim::sim::tracefile::{Columns, TimeUnit, TraceError, TraceFile};
use gpuclaim::sim::{Dist, Durations, SimConfig, Workload};
use gpuclaim::{Builtin, Op, Outcome, sim};

const FIXTURE: &str = "\
name,cpu_milli,num_gpu,creation_time,deletion_time
p0,1000,0,0,600
p1,1000,1,60,3600
p2,1000,2,120,7200
p3,1000,4,180,240
p4,1000,8,200,300
p5,1000,1,300,3000
";

fn parse(text: &str, columns: &Columns, skip_bad: bool) -> Result<TraceFile, TraceError> {
    TraceFile::parse(Path::new("fixture.csv"), text.as_bytes(), columns, skip_bad)
}

#[test]
fn openb_columns_keep_and_skip_exactly() {
    let f = parse(FIXTURE, &Columns::openb(), false).unwrap();
    assert_eq!(f.rows.len(), 6);
    // Seconds to minutes: p1 runs 1..60 minutes.
    assert_eq!(
        (f.rows[1].start, f.rows[1].end, f.rows[1].line),
        (1.0, 60.0, 3)
    );
    let s = f.select(2, 1.0, 1.0, 0);
    // p0 is CPU only; p3 (4 GPUs) and p4 (8) are too big for 2 GPUs.
    assert_eq!(s.kept(), 3);
    assert_eq!(
        (s.zero_gpu, s.too_many_gpus, s.not_sampled, s.bad_rows),
        (1, 2, 0, 0)
    );
    assert_eq!(s.requests[1].gpus, 2);
    let one = f.select(1, 1.0, 0.5, 0);
    assert_eq!((one.kept(), one.too_many_gpus), (2, 3));
    // Time scaling halves every time.
    assert_eq!((one.requests[0].start, one.requests[0].end), (0.5, 30.0));
    assert!(
        s.to_string()
            .starts_with("kept 3 requests; skipped 3: 0 not sampled, 1 zero-gpu")
    );
}

#[test]
fn generic_columns_and_fractional_gpus() {
    let text = "job,gpu,begin,finish\nj1,0.5,1,2\nj2,1.2,2,3\nj3,1,0,1\n";
    let columns = Columns {
        id: "job".into(),
        gpus: "gpu".into(),
        start: "begin".into(),
        end: "finish".into(),
        unit: TimeUnit::Hours,
    };
    let f = parse(text, &columns, false).unwrap();
    // A fraction of a GPU takes a whole one: 0.5 -> 1, 1.2 -> 2.
    let gpus: Vec<u32> = f.rows.iter().map(|r| r.gpus).collect();
    assert_eq!(gpus, [1, 2, 1]);
    assert_eq!((f.rows[0].start, f.rows[0].end), (60.0, 120.0));
    let e = parse(text, &Columns::openb(), false).unwrap_err();
    assert!(
        e.to_string().starts_with("fixture.csv:1: no column `name`"),
        "{e}"
    );
}

#[test]
fn malformed_rows_name_the_line_or_are_counted() {
    let text =
        "name,num_gpu,creation_time,deletion_time\na,1,0,10\nb,x,0,10\nc,1,20,10\nd,1,0\ne,1,5,6\n";
    let e = parse(text, &Columns::openb(), false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fixture.csv:3: `num_gpu` is `x`; expected a number of GPUs (0, 1, 2, … or a fraction)"
    );
    let f = parse(text, &Columns::openb(), true).unwrap();
    assert_eq!(f.rows.len(), 2);
    assert_eq!(f.bad_rows, 3);
    assert!(
        f.bad_examples[1].starts_with("fixture.csv:4: ends"),
        "{:?}",
        f.bad_examples
    );
    assert!(
        f.bad_examples[2].starts_with("fixture.csv:5: 3 fields"),
        "{:?}",
        f.bad_examples
    );
    assert_eq!(f.select(2, 1.0, 1.0, 0).bad_rows, 3);
    // The rows read include the bad ones.
    assert_eq!(f.read_summary(), "5 rows read, 3 skipped as bad, 2 used");
    let clean = parse(
        "name,num_gpu,creation_time,deletion_time\na,1,0,10\n",
        &Columns::openb(),
        true,
    )
    .unwrap();
    assert_eq!(clean.read_summary(), "1 row read");
    let s = clean.select(2, 1.0, 1.0, 0);
    assert_eq!(
        s.to_string(),
        "kept 1 request; skipped 0: 0 not sampled, 0 zero-gpu (CPU only), 0 too-many-gpus (more than the device has), 0 bad rows"
    );
}

#[test]
fn the_kept_share_depends_on_id_and_seed_only() {
    let mut text = String::from("name,num_gpu,creation_time,deletion_time\n");
    for i in 0..2000 {
        text.push_str(&format!("pod-{i},1,{i},{}\n", i + 100));
    }
    let f = parse(&text, &Columns::openb(), false).unwrap();
    let a = f.select(2, 0.25, 1.0, 42);
    assert_eq!(a, f.select(2, 0.25, 1.0, 42));
    assert!((400..600).contains(&a.kept()), "{}", a.kept());
    assert_eq!(a.kept() + a.not_sampled, 2000);
    assert_ne!(a.requests, f.select(2, 0.25, 1.0, 43).requests);
    // Reversing the rows keeps the same requests.
    let mut reversed = String::from("name,num_gpu,creation_time,deletion_time\n");
    for line in text.lines().skip(1).collect::<Vec<_>>().into_iter().rev() {
        reversed.push_str(line);
        reversed.push('\n');
    }
    let r = parse(&reversed, &Columns::openb(), false)
        .unwrap()
        .select(2, 0.25, 1.0, 42);
    let mut starts: Vec<f64> = r.requests.iter().map(|q| q.start).collect();
    starts.reverse();
    let forward: Vec<f64> = a.requests.iter().map(|q| q.start).collect();
    assert_eq!(starts, forward);
}

fn openb_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/openb_pod_list_default.csv")
}

#[test]
fn openb_preset_on_the_real_trace() {
    let path = openb_path();
    if !path.exists() {
        eprintln!("SKIPPED: {} is absent", path.display());
        return;
    }
    let f = TraceFile::load(&path, &Columns::openb(), false).unwrap();
    assert_eq!(f.rows.len(), 8152);
    assert_eq!(f.bad_rows, 0);
    // The trace's last second (README: 12,902,960 s).
    assert_eq!(f.last_end(), 12_902_960.0 / 60.0);
    let s = f.select(2, 1.0, 1.0, 0);
    // num_gpu 0: 1,088 pods; 4 or 8: 59; 1 or 2: 7,005.
    assert_eq!((s.kept(), s.zero_gpu, s.too_many_gpus), (7005, 1088, 59));
    let small = f.select(2, 0.01, 1.0, 5);
    let config = SimConfig {
        gpus: 2,
        vm_slots: 24,
        horizon: f.last_end(),
        kube_at: Some(24.0 * 60.0),
        takeover: Dist::Exp(60.0),
        durations: Durations::ASSUMED,
        workload: Workload::Trace(&small.requests),
    };
    let c = sim::simulate(&Builtin::Fixed, &config, 5).unwrap();
    assert_eq!(c.arrivals, small.kept());
    assert_eq!(c.requests_of(Op::CreateVm) + c.no_slot, c.arrivals);
    assert_eq!(c.violations, [0; 5]);
    assert_eq!(c.request(Op::RemoveVm, Outcome::Rejected), 0);
}

#[test]
fn empty_files_and_files_without_requests_are_refused() {
    let openb = Columns::openb();
    for text in ["", "\n\n"] {
        let e = parse(text, &openb, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "fixture.csv: the file is empty; expected a header naming the columns (name,num_gpu,creation_time,deletion_time), then one row per request",
            "{text:?}"
        );
    }
    let header = "name,num_gpu,creation_time,deletion_time\n";
    let e = parse(header, &openb, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fixture.csv: no requests to replay: the file has a header but no rows"
    );
    let e = parse(&format!("{header}a,x,0,1\n"), &openb, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fixture.csv: no requests to replay: its one row is bad (fixture.csv:2: `num_gpu` is `x`; expected a number of GPUs (0, 1, 2, … or a fraction))"
    );
    let e = parse(&format!("{header}a,x,0,1\nb,1,5,2\n"), &openb, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fixture.csv: no requests to replay: all 2 rows are bad (the first: fixture.csv:2: `num_gpu` is `x`; expected a number of GPUs (0, 1, 2, … or a fraction))"
    );
}
