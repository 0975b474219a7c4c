//! Outputs appear complete or not at all (`gpuclaim::report`). A binary of
//! its own: `remove_unfinished` removes every unfinished output of the
//! process, so no other test may be writing files meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};

use gpuclaim::report::{AtomicFile, check_file, check_folder, remove_unfinished, write_atomic};

/// Held by every test here: `remove_unfinished` would take another test's
/// temporary file.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpuclaim-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn outputs_appear_complete_or_not_at_all() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Committed: the file appears, with every byte.
    let d = dir("commit");
    let mut f = AtomicFile::create(&d.join("a.csv")).unwrap();
    f.write_all(b"x,y\n").unwrap();
    assert_eq!(names(&d), [format!(".a.csv.tmp-{}", std::process::id())]);
    f.commit().unwrap();
    assert_eq!(names(&d), ["a.csv"]);
    assert_eq!(std::fs::read(d.join("a.csv")).unwrap(), b"x,y\n");

    // A folder made where the file should go while it is written: the
    // rename fails, and the temporary file goes with it.
    let mut f = AtomicFile::create(&d.join("b.csv")).unwrap();
    f.write_all(b"x\n").unwrap();
    std::fs::create_dir(d.join("b.csv")).unwrap();
    std::fs::write(d.join("b.csv").join("keep"), b"").unwrap();
    assert!(f.commit().is_err());
    assert_eq!(names(&d), ["a.csv", "b.csv"]);

    // Dropped without a commit: nothing.
    let mut f = AtomicFile::create(&d.join("c.csv")).unwrap();
    f.write_all(b"x\n").unwrap();
    drop(f);
    assert_eq!(names(&d), ["a.csv", "b.csv"]);

    // Interrupted (what the binary's Ctrl-C handler does): the unfinished
    // file goes, the finished ones stay, and a later commit fails.
    write_atomic(&d.join("done.csv"), b"1\n").unwrap();
    let mut f = AtomicFile::create(&d.join("open.csv")).unwrap();
    f.write_all(b"2\n").unwrap();
    f.flush().unwrap();
    assert_eq!(remove_unfinished(), 1);
    assert_eq!(names(&d), ["a.csv", "b.csv", "done.csv"]);
    assert!(f.commit().is_err());
    assert_eq!(names(&d), ["a.csv", "b.csv", "done.csv"]);
    assert_eq!(remove_unfinished(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[cfg(unix)]
#[test]
fn links_devices_pipes_and_folders_are_not_replaced() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = dir("special");

    // A symbolic link: the file it points to gets the bytes; the link stays.
    std::fs::write(d.join("target.csv"), b"old\n").unwrap();
    std::os::unix::fs::symlink("target.csv", d.join("link.csv")).unwrap();
    write_atomic(&d.join("link.csv"), b"new\n").unwrap();
    assert!(
        std::fs::symlink_metadata(d.join("link.csv"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(d.join("target.csv")).unwrap(), b"new\n");
    // A link to nothing yet: the file is made where it points.
    std::os::unix::fs::symlink("later.csv", d.join("dangling.csv")).unwrap();
    write_atomic(&d.join("dangling.csv"), b"1\n").unwrap();
    assert_eq!(std::fs::read(d.join("later.csv")).unwrap(), b"1\n");

    // A device would be written directly too (not tried here: a
    // regression run as root would replace /dev/null); checking it opens
    // nothing.
    check_file(Path::new("/dev/null")).unwrap();

    // A named pipe is written into, for whoever reads it.
    let fifo = d.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    write_atomic(&fifo, b"through the pipe\n").unwrap();
    assert_eq!(reader.join().unwrap(), b"through the pipe\n");
    assert!(!std::fs::metadata(&fifo).unwrap().is_file());

    // A folder is refused, and so is a folder path that runs through a file.
    std::fs::create_dir(d.join("adir")).unwrap();
    let e = write_atomic(&d.join("adir"), b"x").unwrap_err();
    assert_eq!(e.to_string(), "is a folder; give the path of a file");
    assert_eq!(
        check_file(&d.join("adir")).unwrap_err().to_string(),
        e.to_string()
    );
    std::fs::write(d.join("afile"), b"").unwrap();
    assert_eq!(
        check_folder(&d.join("afile").join("cx"))
            .unwrap_err()
            .to_string(),
        format!("{} is a file, not a folder", d.join("afile").display())
    );
    // Writing names the file in the way, not just the path it wanted.
    assert_eq!(
        write_atomic(&d.join("afile").join("cx").join("x.csv"), b"x")
            .unwrap_err()
            .to_string(),
        format!("{} is a file, not a folder", d.join("afile").display())
    );
    // Checking creates nothing.
    check_folder(&d.join("new").join("deeper")).unwrap();
    check_file(&d.join("new2").join("x.csv")).unwrap();
    let mut left = names(&d);
    left.retain(|n| {
        ![
            "adir",
            "afile",
            "dangling.csv",
            "fifo",
            "later.csv",
            "link.csv",
            "target.csv",
        ]
        .contains(&n.as_str())
    });
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(remove_unfinished(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}
