//! The house's rules, read from the source (see ARCHITECTURE.md): imports only go down the
//! layers (faces -> lock logic -> stores, all onto the shared vocabulary), and no modules use
//! each other in a circle.

use std::path::Path;

use ac_redislock_testsupport::modules::ModuleGraph;

/// The layers, top to bottom: a module may use its own layer's and the ones below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Errors, status snapshots, the drift margin, reporting: used by every layer.
    Vocabulary,
    /// The only code that speaks to a backend.
    Stores,
    /// One core under every face.
    LockLogic,
    /// What users call.
    Faces,
}

fn layer(module: &str) -> Layer {
    let top = module.split("::").next().unwrap_or_default();
    match top {
        "client" | "builder" | "blocking" => Layer::Faces,
        "lock" => Layer::LockLogic,
        "store" => Layer::Stores,
        "error" | "status" | "drift" | "report" => Layer::Vocabulary,
        other => panic!(
            "module {module:?} ({other}) belongs to no layer: add it to ARCHITECTURE.md and here"
        ),
    }
}

fn graph() -> ModuleGraph {
    ModuleGraph::of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
}

#[test]
fn imports_only_go_down_the_layers() {
    let graph = graph();
    let upward: Vec<String> = graph
        .edges()
        .filter(|(from, _)| !from.is_empty()) // the crate root declares and re-exports
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} ({:?}) uses {to} ({:?})", layer(from), layer(to)))
        .collect();
    assert!(
        upward.is_empty(),
        "imports against the layers:\n{upward:#?}"
    );
    // The graph was read: the layers do use each other downward.
    assert!(graph.uses["client"].contains("lock"));
    assert!(graph.uses["lock"].contains("store"));
    assert!(graph.uses["store::redis_store"].contains("store"));
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let graph = graph();
    assert!(graph.uses.len() > 20, "{} modules read", graph.uses.len());
    assert_eq!(graph.cycles(), Vec::<Vec<String>>::new());
}
