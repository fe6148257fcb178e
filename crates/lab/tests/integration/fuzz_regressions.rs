//! Every seed of the fuzz targets (`fuzz/seeds/TARGET/`) and every input a fuzzer found
//! (`fuzz/regressions/TARGET/`, the crash or hang, committed small) replays through the
//! target's function without a panic: a finding fixed once stays fixed. `cargo xtask fuzz`
//! runs the fuzzers themselves.

use std::path::Path;

use saturn_lab::fuzz::TARGETS;

#[test]
fn every_seed_and_every_found_input_is_handled_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let seeds = fuzz.join("seeds").join(name);
        assert!(seeds.is_dir(), "target {name} has no seeds in {}", seeds.display());
        for kind in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(name)) else { continue };
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).unwrap();
                target(&bytes);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= TARGETS.len());
    eprintln!("{replayed} inputs replayed");
}
