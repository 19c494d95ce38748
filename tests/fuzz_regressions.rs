//! Every fuzz seed and every input a fuzzing run found crashing
//! (`benches/fuzz/seeds/<target>/`, `benches/fuzz/regressions/<target>/`)
//! goes through its target again (`rvs::fuzzing`): what crashed once is
//! fixed for good. `benches/fuzz.sh` copies new crashes into
//! `regressions/`; each needs its fix before it is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn seeds_and_found_crashes_pass_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fuzz");
    let mut ran = 0;
    let mut failed = Vec::new();
    for (name, target) in rvs::fuzzing::TARGETS {
        let mut n = 0;
        for dir in ["seeds", "regressions"] {
            let d = root.join(dir).join(name);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                let data = std::fs::read(&p).unwrap();
                let r = std::panic::catch_unwind(|| target(&data));
                if r.is_err() {
                    failed.push(p.display().to_string());
                }
                n += 1;
            }
        }
        assert!(n > 0, "{name}: no seeds under {}", root.display());
        ran += n;
    }
    eprintln!("{ran} inputs");
    assert!(
        failed.is_empty(),
        "these inputs panic (messages above): {failed:#?}"
    );
}
