//! `cli/src` in modules that do not use each other in a circle (see ARCHITECTURE.md).

use std::path::Path;

use ac_redislock_testsupport::modules::ModuleGraph;

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let graph = ModuleGraph::of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/main.rs"));
    assert!(graph.uses["commands"].contains("run"), "{graph:#?}");
    assert!(graph.uses["run"].contains("report"), "{graph:#?}");
    assert_eq!(graph.cycles(), Vec::<Vec<String>>::new());
}
