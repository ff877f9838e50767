//! The module graph of a crate, read from its source with `syn`: which module uses which, for
//! the tests that keep the layers of the house (imports only downward, no cycles).
//!
//! A module uses another when its code names a path into it: `use crate::store::Owned`,
//! `super::Core`, `crate::RedisLock` (resolved through the crate root's `pub use`), a child
//! module's name, or such a path inside a macro call. Declaring a module (`mod x;`) is not a
//! use, and `#[cfg(test)]` items (unit tests) are left out: they are not the architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path inside the crate, `""` for the root: `"lock::guard"`.
pub type Module = String;

/// Which module of a crate uses which.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every module, with the modules it uses (never itself).
    pub uses: BTreeMap<Module, BTreeSet<Module>>,
}

impl ModuleGraph {
    /// Reads the crate whose root file is `root` (`src/lib.rs`, `src/main.rs`), following its
    /// `mod` declarations to their files.
    ///
    /// # Panics
    ///
    /// If a file cannot be read or parsed, or a declared module has no file.
    #[must_use]
    pub fn of_crate(root: &Path) -> Self {
        let mut files = BTreeMap::new();
        collect(root, Vec::new(), &mut files);
        let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
        let reexports = reexports(&files[&Vec::new()], &modules);
        let mut graph = Self::default();
        for (module, file) in &files {
            let mut finder = Finder {
                module,
                modules: &modules,
                reexports: &reexports,
                found: BTreeSet::new(),
            };
            finder.visit_file(file);
            let uses = finder
                .found
                .into_iter()
                .filter(|target| target != module)
                .map(|target| target.join("::"))
                .collect();
            graph.uses.insert(module.join("::"), uses);
        }
        graph
    }

    /// The groups of modules that use each other in a circle (strongly connected components
    /// of more than one module), each sorted.
    #[must_use]
    pub fn cycles(&self) -> Vec<Vec<Module>> {
        let mut cycles = Vec::new();
        let mut seen = BTreeSet::new();
        for start in self.uses.keys() {
            if seen.contains(start) {
                continue;
            }
            let reach = self.reachable(start);
            let mut group: Vec<Module> = reach
                .iter()
                .filter(|other| *other == start || self.reachable(other).contains(start))
                .cloned()
                .collect();
            group.sort();
            seen.extend(group.iter().cloned());
            if group.len() > 1 {
                cycles.push(group);
            }
        }
        cycles
    }

    /// Every module `from` uses, directly or not (itself included).
    fn reachable(&self, from: &str) -> BTreeSet<Module> {
        let mut reach = BTreeSet::from([from.to_owned()]);
        let mut todo = vec![from.to_owned()];
        while let Some(next) = todo.pop() {
            for target in self.uses.get(&next).into_iter().flatten() {
                if reach.insert(target.clone()) {
                    todo.push(target.clone());
                }
            }
        }
        reach
    }

    /// Every use, as `(from, to)`.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.uses
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |to| (from.as_str(), to.as_str())))
    }
}

/// Parses `file` as the module `module` and the files of the modules it declares.
fn collect(file: &Path, module: Vec<String>, files: &mut BTreeMap<Vec<String>, syn::File>) {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
    let parsed = syn::parse_file(&text)
        .unwrap_or_else(|err| panic!("cannot parse {}: {err}", file.display()));
    // `lib.rs`, `main.rs` and `mod.rs` own a folder; `x.rs` owns `x/`.
    let dir: PathBuf = match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().map(Path::to_path_buf),
        _ => file.with_extension("").into(),
    }
    .unwrap_or_default();
    for item in &parsed.items {
        if let syn::Item::Mod(declared) = item
            && declared.content.is_none()
            && !is_test_only(&declared.attrs)
        {
            let name = declared.ident.to_string();
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child_file = if flat.exists() { flat } else { nested };
            let mut child = module.clone();
            child.push(name);
            collect(&child_file, child, files);
        }
    }
    files.insert(module, parsed);
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Ident>()
                .is_ok_and(|arg| arg == "test")
    })
}

/// The crate root's `pub use` items: exported name -> the module it comes from.
fn reexports(root: &syn::File, modules: &BTreeSet<Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for item in &root.items {
        if let syn::Item::Use(item) = item
            && matches!(item.vis, syn::Visibility::Public(_))
        {
            for (path, name) in use_paths(&item.tree, Vec::new()) {
                let target = longest_module(&path, modules);
                if !target.is_empty() {
                    map.insert(name, target);
                }
            }
        }
    }
    map
}

/// The full paths a use tree names, each with the name it brings in scope.
fn use_paths(tree: &syn::UseTree, prefix: Vec<String>) -> Vec<(Vec<String>, String)> {
    let extend = |prefix: &Vec<String>, name: String| {
        let mut path = prefix.clone();
        if name != "self" {
            path.push(name);
        }
        path
    };
    match tree {
        syn::UseTree::Path(path) => use_paths(&path.tree, extend(&prefix, path.ident.to_string())),
        syn::UseTree::Name(name) => {
            let ident = name.ident.to_string();
            vec![(extend(&prefix, ident.clone()), ident)]
        }
        syn::UseTree::Rename(rename) => vec![(
            extend(&prefix, rename.ident.to_string()),
            rename.rename.to_string(),
        )],
        syn::UseTree::Glob(_) => vec![(prefix, "*".to_owned())],
        syn::UseTree::Group(group) => group
            .items
            .iter()
            .flat_map(|tree| use_paths(tree, prefix.clone()))
            .collect(),
    }
}

/// The longest prefix of `path` that is a module.
fn longest_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// Finds the modules a file's code names.
struct Finder<'a> {
    module: &'a Vec<String>,
    modules: &'a BTreeSet<Vec<String>>,
    reexports: &'a BTreeMap<String, Vec<String>>,
    found: BTreeSet<Vec<String>>,
}

impl Finder<'_> {
    /// Records the module a path with these segments leads to, if it leads into the crate.
    fn path(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.clone(),
            "super" => self.module[..self.module.len().saturating_sub(1)].to_vec(),
            child => {
                let mut child_path = self.module.clone();
                child_path.push(child.to_owned());
                if !self.modules.contains(&child_path) {
                    return; // another crate, or an item of this module
                }
                child_path
            }
        };
        let mut rest = &segments[1..];
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        let mut target = longest_module(&base, self.modules);
        if target.is_empty() {
            // An item of the root: follow its re-export to where it lives.
            let name = base.first().map_or("", String::as_str);
            match self.reexports.get(name) {
                Some(source) => target = source.clone(),
                None => return,
            }
        }
        self.found.insert(target);
    }

    /// Paths inside a macro call's tokens (`crate :: x :: y`).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(group) = &trees[i] {
                self.tokens(group.stream());
            }
            if let TokenTree::Ident(ident) = &trees[i]
                && matches!(ident.to_string().as_str(), "crate" | "super")
            {
                let mut segments = vec![ident.to_string()];
                let mut j = i + 1;
                while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                    (trees.get(j), trees.get(j + 1))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    match trees.get(j + 2) {
                        Some(TokenTree::Ident(next)) => segments.push(next.to_string()),
                        _ => break,
                    }
                    j += 3;
                }
                self.path(&segments);
                i = j;
                continue;
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            _ => &[],
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // A declared module is not a use; an inline one is part of this file.
        if let Some((_, items)) = &item.content {
            for item in items {
                self.visit_item(item);
            }
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        for (path, _) in use_paths(&item.tree, Vec::new()) {
            self.path(&path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if path.leading_colon.is_none() {
            self.path(&segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.tokens(mac.tokens.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn uses_are_found_through_every_kind_of_path() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "lib.rs",
                    "mod face; mod logic; mod store; pub use face::Client;",
                ),
                ("face.rs", "use crate::logic::Core; pub struct Client;"),
                (
                    "logic/mod.rs",
                    "mod part; pub struct Core; fn f() { let _ = crate::store::open(); }",
                ),
                (
                    "logic/part.rs",
                    "use super::Core; fn g() { tracing::info!(\"{:?}\", crate::Client); }",
                ),
                (
                    "store.rs",
                    "pub fn open() {} #[cfg(test)] mod tests { use crate::face::Client; }",
                ),
            ],
        );
        let graph = ModuleGraph::of_crate(&dir.path().join("lib.rs"));
        let uses = |m: &str| graph.uses[m].iter().cloned().collect::<Vec<_>>();
        assert_eq!(uses("face"), ["logic"]);
        assert_eq!(uses("logic"), ["store"]);
        assert_eq!(uses("logic::part"), ["face", "logic"]);
        assert!(uses("store").is_empty(), "unit tests are left out");
        // face -> logic -> (part is not used by logic) ; part -> face -> logic: no circle
        // through part, since logic does not use part.
        assert!(graph.cycles().is_empty(), "{:?}", graph.cycles());
    }

    #[test]
    fn a_circle_is_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("lib.rs", "mod a; mod b; mod c;"),
                ("a.rs", "use crate::b::B; pub struct A;"),
                ("b.rs", "pub struct B; fn f() -> crate::c::C { todo!() }"),
                ("c.rs", "pub struct C(crate::a::A);"),
            ],
        );
        let graph = ModuleGraph::of_crate(&dir.path().join("lib.rs"));
        assert_eq!(graph.cycles(), [["a", "b", "c"]]);
    }
}
