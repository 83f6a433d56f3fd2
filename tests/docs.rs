//! The docs cite only what exists: every relative Markdown link of every `.md` file in the
//! repository names a file that is there (and a heading that is there, for `#anchor`s), every
//! repository path written in backticks exists, and nothing cites the files the project was
//! started from but does not carry (the original API contract, the design notes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files under the repository with one of `exts`, outside build output and VCS data.
fn files(exts: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                    stack.push(path);
                }
            } else if exts
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Anchors of a Markdown file's headings (outside code fences), with GitHub's `-1`, `-2`
/// suffixes for repeated headings.
fn anchors(markdown: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let text = text.replace('`', "");
        let base = slug(&text);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The text outside code fences (links and paths inside examples are not citations).
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `(target, line)` of every inline Markdown link `[text](target)`.
fn links(prose: &str) -> Vec<(String, usize)> {
    let re = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    prose
        .lines()
        .enumerate()
        .flat_map(|(i, line)| {
            re.captures_iter(line)
                .map(move |c| (c[1].to_string(), i + 1))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let docs = files(&["md"]);
    assert!(
        docs.iter().any(|d| d.ends_with("docs/api.md")),
        "docs/api.md, the HTTP contract, is missing"
    );
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (target, line) in links(&prose(&text)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{}:{line}: {target}: no such file", relative(doc)));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
            {
                let target_text = std::fs::read_to_string(&path).unwrap();
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!(
                        "{}:{line}: {target}: no heading #{anchor} in {}",
                        relative(doc),
                        relative(&path)
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let re =
        regex::Regex::new(r"`((?:src|tests|scripts|bench|deploy|docs|\.ci)/[A-Za-z0-9_./-]*)`")
            .unwrap();
    let mut missing = Vec::new();
    let mut named = 0;
    for doc in files(&["md"]) {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, line) in prose(&text).lines().enumerate() {
            for c in re.captures_iter(line) {
                named += 1;
                let path = c[1].trim_end_matches('/');
                if !root().join(path).exists() {
                    missing.push(format!("{}:{}: `{}`", relative(&doc), i + 1, &c[1]));
                }
            }
        }
    }
    assert!(
        named > 20,
        "only {named} paths found: is the pattern right?"
    );
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn nothing_cites_files_outside_the_repository() {
    let mut found = Vec::new();
    for file in files(&["md", "rs", "sh", "py", "toml"]) {
        if file.ends_with("tests/docs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let cites_contract = line
                .match_indices("API.md")
                .any(|(at, _)| !line[..at].ends_with("docs/"));
            let lower = line.to_lowercase();
            let about_randomness = ["prng", "rng", "random"].iter().any(|w| lower.contains(w));
            let cites_design =
                (lower.contains("the seed") || lower.contains("seed's")) && !about_randomness;
            if cites_contract || cites_design {
                found.push(format!("{}:{}: {}", relative(&file), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "these cite API.md or the seed, which are not in the repository (use docs/api.md and \
         docs/architecture.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn anchors_follow_github_rules() {
    let a = anchors(
        "# snip\n## Quick start\n### A custom code (PATCH)\n## Quick start\n```\n# not a heading\n```\n",
    );
    for want in [
        "snip",
        "quick-start",
        "a-custom-code-patch",
        "quick-start-1",
    ] {
        assert!(a.contains(want), "{want} in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
}

#[test]
fn every_config_file_example_in_the_docs_is_accepted_by_serve() {
    let mut examples = 0;
    for doc in files(&["md"]) {
        let text = std::fs::read_to_string(&doc).unwrap();
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                Some(b) if line.starts_with("```") => {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("snip.toml");
                    std::fs::write(&path, &b).unwrap();
                    let args = snip::config::ServeArgs {
                        config: Some(path),
                        ..Default::default()
                    };
                    if let Err(e) = args.load() {
                        panic!(
                            "{}: this config file is refused: {e:#}\n{b}",
                            relative(&doc)
                        );
                    }
                    examples += 1;
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None if line.trim() == "```toml" => block = Some(String::new()),
                None => {}
            }
        }
    }
    assert!(examples >= 2, "only {examples} config file examples found");
}

/// `METHOD /path` of every operation docs/api.md gives a section (`### \`GET /x\``).
fn documented_operations() -> std::collections::BTreeSet<String> {
    let api = std::fs::read_to_string(root().join("docs/api.md")).expect("read docs/api.md");
    let mut found = std::collections::BTreeSet::new();
    for heading in api.lines().filter(|l| l.starts_with("### ")) {
        for span in heading.split('`').skip(1).step_by(2) {
            if let Some((method, path)) = span.split_once(' ')
                && matches!(method, "GET" | "HEAD" | "POST" | "PATCH" | "PUT" | "DELETE")
                && path.starts_with('/')
            {
                found.insert(format!("{method} {path}"));
            }
        }
    }
    found
}

/// The prose contract and the OpenAPI document generated from the code list the same
/// operations.
#[test]
fn api_md_and_the_openapi_document_list_the_same_operations() {
    let spec: serde_json::Value =
        serde_json::from_str(snip::http::openapi::spec_json()).expect("the spec is JSON");
    assert_eq!(spec["openapi"], "3.1.0");
    let mut in_spec = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            in_spec.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let in_docs = documented_operations();
    assert!(
        in_docs.len() >= 20,
        "too few operations found in docs/api.md: {in_docs:?}"
    );
    let only_docs: Vec<_> = in_docs.difference(&in_spec).collect();
    let only_spec: Vec<_> = in_spec.difference(&in_docs).collect();
    assert!(
        only_docs.is_empty() && only_spec.is_empty(),
        "docs/api.md only: {only_docs:?}\nOpenAPI only: {only_spec:?}"
    );
}

/// The top-level modules of `src/` that each top-level module's code names (`crate::x`),
/// comments left out.
fn module_dependencies() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = root().join("src");
    let mut deps = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for file in files(&["rs"]) {
        let Ok(rel) = file.strip_prefix(&src) else {
            continue;
        };
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "main" | "lib") {
            continue;
        }
        let code: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let entry = deps.entry(top.clone()).or_default();
        for part in code.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                entry.insert(name);
            }
        }
    }
    deps
}

/// The layering docs/architecture.md draws: no two top-level modules depend on each other,
/// directly or through others; the store knows nothing of the caches, clicks, the use cases or
/// HTTP; HTTP reaches the store only through the use cases (`service`).
#[test]
fn modules_depend_on_each_other_as_the_architecture_doc_draws() {
    let deps = module_dependencies();
    assert!(
        deps.contains_key("http") && deps.contains_key("store"),
        "{deps:?}"
    );
    for (module, uses) in &deps {
        for used in uses {
            // A path from `used` back to `module` is a cycle.
            let mut stack = vec![used.clone()];
            let mut seen = HashSet::new();
            while let Some(m) = stack.pop() {
                assert!(
                    m != *module,
                    "import cycle: {module} uses {used}, which leads back to {module}\n{deps:#?}"
                );
                if seen.insert(m.clone()) {
                    stack.extend(deps.get(&m).into_iter().flatten().cloned());
                }
            }
        }
    }
    for forbidden in [
        "cache",
        "shared_cache",
        "clicks",
        "service",
        "http",
        "startup",
    ] {
        assert!(
            !deps["store"].contains(forbidden),
            "the store uses crate::{forbidden}"
        );
    }
    assert!(!deps["http"].contains("store"), "http uses crate::store");
    for file in files(&["rs"]) {
        if !file.starts_with(root().join("src/http")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            assert!(
                !code.contains(".store.")
                    && !code.contains(".store\n")
                    && !code.contains("Sqlite")
                    && !code.contains("Postgres"),
                "{}:{}: the HTTP layer reaches the store or names a backend: {line}",
                file.display(),
                n + 1
            );
        }
    }
}

/// Longest function body outside tests, in lines (from `fn` to the closing brace).
const MAX_FUNCTION_LINES: usize = 60;

/// The functions of `src/` outside tests, as `(file, name, lines)`: test modules
/// (`#[cfg(test)] mod …`, inline or in their own files) and `#[test]` functions are left out.
fn function_lengths() -> Vec<(String, String, usize)> {
    use syn::visit::Visit;

    fn is_test(attrs: &[syn::Attribute]) -> bool {
        attrs.iter().any(|a| {
            let path = a.path();
            path.is_ident("test")
                || path.segments.last().is_some_and(|s| s.ident == "test")
                || (path.is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
        })
    }

    struct Lengths {
        file: String,
        /// Files declared as test modules (`#[cfg(test)] mod name;`), by path stem.
        test_modules: Vec<String>,
        found: Vec<(String, String, usize)>,
    }
    impl Lengths {
        /// Measures a function unless it is a test; whether it measured it.
        fn add(
            &mut self,
            attrs: &[syn::Attribute],
            sig: &syn::Signature,
            close: proc_macro2::Span,
        ) -> bool {
            if is_test(attrs) {
                return false;
            }
            let lines = close.end().line - sig.fn_token.span.start().line + 1;
            self.found
                .push((self.file.clone(), sig.ident.to_string(), lines));
            true
        }
    }
    impl<'ast> Visit<'ast> for Lengths {
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            if !is_test(&m.attrs) {
                syn::visit::visit_item_mod(self, m);
            } else if m.content.is_none() {
                self.test_modules.push(m.ident.to_string());
            }
        }
        fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
            if self.add(&f.attrs, &f.sig, f.block.brace_token.span.close()) {
                syn::visit::visit_item_fn(self, f);
            }
        }
        fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
            if self.add(&f.attrs, &f.sig, f.block.brace_token.span.close()) {
                syn::visit::visit_impl_item_fn(self, f);
            }
        }
        fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
            if let Some(body) = &f.default {
                self.add(&f.attrs, &f.sig, body.brace_token.span.close());
            }
        }
    }

    let mut all = Vec::new();
    let mut test_files: Vec<PathBuf> = Vec::new();
    let mut sources: Vec<PathBuf> = files(&["rs"])
        .into_iter()
        .filter(|f| f.starts_with(root().join("src")))
        .collect();
    sources.sort();
    for file in &sources {
        let text = std::fs::read_to_string(file).unwrap();
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", relative(file)));
        let mut lengths = Lengths {
            file: relative(file),
            test_modules: Vec::new(),
            found: Vec::new(),
        };
        lengths.visit_file(&syntax);
        // `a/b.rs` and `a/b/mod.rs` declare their modules in `a/b/`; `a/lib.rs` and `a/main.rs`
        // in `a/`.
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let dir = if ["mod", "lib", "main"].contains(&stem) {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for m in &lengths.test_modules {
            test_files.push(dir.join(format!("{m}.rs")));
            test_files.push(dir.join(m));
        }
        all.push((file.clone(), lengths.found));
    }
    all.into_iter()
        .filter(|(file, _)| !test_files.iter().any(|t| file.starts_with(t)))
        .flat_map(|(_, found)| found)
        .collect()
}

#[test]
fn no_function_outside_tests_is_longer_than_the_architecture_doc_allows() {
    let lengths = function_lengths();
    assert!(
        lengths
            .iter()
            .any(|(f, n, _)| f == "src/http/server.rs" && n == "serve")
            && !lengths
                .iter()
                .any(|(f, _, _)| f.starts_with("src/store/contract")),
        "the measure misses functions or counts test modules: {lengths:?}"
    );
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let long: Vec<String> = lengths
        .iter()
        .filter(|(_, _, lines)| *lines > MAX_FUNCTION_LINES)
        .map(|(file, name, lines)| format!("{file} {name} ({lines} lines)"))
        .filter(|entry| {
            // An exception is a line of the doc naming both the file and `name`.
            let (file, rest) = entry.split_once(' ').unwrap();
            let name = rest.split(' ').next().unwrap();
            !doc.lines()
                .any(|l| l.contains(&format!("`{file}`")) && l.contains(&format!("`{name}`")))
        })
        .collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: split them, or list each with its reason \
         in docs/architecture.md (a line naming `file` and `function`):\n{}",
        long.join("\n")
    );
}
