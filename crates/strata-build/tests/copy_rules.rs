//! COPY/ADD rules as specifications: one test per rule, on real temp directories (a context and
//! a destination rootfs). Run as root (ownership checks).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use strata_build::context::BuildContext;
use strata_build::copy::{self, CopyError, CopySpec, SelectOptions};
use strata_build::ignore::{PatternMatcher, parse_ignore_file};
use strata_build::source::DirTree;
use tempfile::TempDir;

struct Fixture {
    ctx: TempDir,
    root: TempDir,
    ignore: String,
}

impl Fixture {
    fn new() -> Self {
        Self {
            ctx: tempfile::tempdir().unwrap(),
            root: tempfile::tempdir().unwrap(),
            ignore: String::new(),
        }
    }

    fn file(&self, rel: &str, content: &str) -> &Self {
        let p = self.ctx.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    fn context(&self) -> BuildContext {
        let m = PatternMatcher::new(&parse_ignore_file(&self.ignore)).unwrap();
        BuildContext::scan(self.ctx.path(), &m, None).unwrap()
    }

    fn copy(&self, sources: &[&str], dest: &str) -> Result<copy::CopyStats, CopyError> {
        self.copy_spec(CopySpec {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            workdir: "/".into(),
            ..Default::default()
        })
    }

    fn copy_spec(&self, spec: CopySpec) -> Result<copy::CopyStats, CopyError> {
        let ctx = self.context();
        let prepared = copy::prepare(&ctx, &spec)?;
        copy::execute(self.root.path(), &ctx, &prepared)
    }

    fn out(&self, rel: impl AsRef<Path>) -> std::path::PathBuf {
        self.root.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.out(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
}

fn spec(sources: &[&str], dest: &str) -> CopySpec {
    CopySpec {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.into(),
        workdir: "/".into(),
        ..Default::default()
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    let md = fs::symlink_metadata(p).unwrap();
    (md.uid(), md.gid())
}

#[test]
fn file_to_a_new_path_without_slash_is_that_file() {
    let f = Fixture::new();
    f.file("a.txt", "A");
    f.copy(&["a.txt"], "/b").unwrap();
    assert_eq!(f.read("b"), "A");
}

#[test]
fn trailing_slash_makes_a_directory_and_parents_are_0755_root() {
    let f = Fixture::new();
    f.file("a.txt", "A");
    f.copy(&["a.txt"], "/x/y/").unwrap();
    assert_eq!(f.read("x/y/a.txt"), "A");
    assert_eq!(mode(&f.out("x")), 0o755);
    assert_eq!(mode(&f.out("x/y")), 0o755);
    assert_eq!(owner(&f.out("x/y")), (0, 0));
}

#[test]
fn file_onto_an_existing_directory_goes_inside() {
    let f = Fixture::new();
    f.file("a.txt", "A");
    fs::create_dir(f.out("dir")).unwrap();
    f.copy(&["a.txt"], "/dir").unwrap();
    assert_eq!(f.read("dir/a.txt"), "A");
}

#[test]
fn a_directory_source_copies_its_contents() {
    let f = Fixture::new();
    f.file("src/a", "1").file("src/sub/b", "2");
    f.copy(&["src"], "/dst").unwrap();
    assert_eq!(f.read("dst/a"), "1");
    assert_eq!(f.read("dst/sub/b"), "2");
    assert!(!f.out("dst/src").exists());
}

#[test]
fn directory_contents_merge_into_an_existing_directory() {
    let f = Fixture::new();
    f.file("src/new", "n");
    fs::create_dir(f.out("dst")).unwrap();
    fs::write(f.out("dst/old"), "o").unwrap();
    f.copy(&["src/"], "/dst/").unwrap();
    assert_eq!(f.read("dst/old"), "o");
    assert_eq!(f.read("dst/new"), "n");
}

#[test]
fn several_sources_need_a_directory_destination() {
    let f = Fixture::new();
    f.file("a", "").file("b", "");
    let err = f.copy(&["a", "b"], "/dst").unwrap_err();
    assert_eq!(
        err.to_string(),
        "when using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    f.copy(&["a", "b"], "/dst/").unwrap();
    assert!(f.out("dst/a").exists() && f.out("dst/b").exists());
}

#[test]
fn wildcards_follow_go_filepath_match() {
    let f = Fixture::new();
    f.file("a.txt", "a")
        .file("b.txt", "b")
        .file("c.md", "c")
        .file("sub/d.txt", "d")
        .file("[x].txt", "x");
    f.copy(&["*.txt"], "/out/").unwrap();
    assert!(f.out("out/a.txt").exists() && f.out("out/b.txt").exists());
    assert!(!f.out("out/c.md").exists());
    assert!(!f.out("out/d.txt").exists(), "* does not cross directories");
    f.copy(&["*/*.txt"], "/deep/").unwrap();
    assert_eq!(f.read("deep/d.txt"), "d");
    f.copy(&["\\[x\\].txt"], "/lit").unwrap();
    assert_eq!(f.read("lit"), "x");
    f.copy(&["[ab].txt"], "/cls/").unwrap();
    assert!(f.out("cls/a.txt").exists() && !f.out("cls/[x].txt").exists());
}

#[test]
fn a_wildcard_matching_nothing_copies_nothing_and_is_not_an_error() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    let stats = f.copy(&["*.nothing"], "/out/").unwrap();
    assert_eq!(stats.files, 0);
}

#[test]
fn a_missing_literal_source_is_an_error_naming_it() {
    let f = Fixture::new();
    let err = f.copy(&["missing.txt"], "/x").unwrap_err();
    assert_eq!(err.to_string(), "\"/missing.txt\": not found");
}

#[test]
fn relative_destinations_are_relative_to_workdir() {
    let f = Fixture::new();
    f.file("a", "A");
    let mut s = spec(&["a"], "rel/");
    s.workdir = "/app".into();
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("app/rel/a"), "A");
    let mut s = spec(&["a"], ".");
    s.workdir = "/work".into();
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("work/a"), "A");
}

#[test]
fn symlinks_inside_a_directory_are_copied_as_symlinks() {
    let f = Fixture::new();
    f.file("d/target", "t");
    symlink("target", f.ctx.path().join("d/link")).unwrap();
    symlink("/etc/shadow", f.ctx.path().join("d/abs")).unwrap();
    f.copy(&["d"], "/out").unwrap();
    assert_eq!(
        fs::read_link(f.out("out/link")).unwrap().to_str(),
        Some("target")
    );
    assert_eq!(
        fs::read_link(f.out("out/abs")).unwrap().to_str(),
        Some("/etc/shadow")
    );
}

#[test]
fn a_symlink_source_is_followed_within_the_context() {
    let f = Fixture::new();
    f.file("real.txt", "real");
    symlink("real.txt", f.ctx.path().join("link.txt")).unwrap();
    f.copy(&["link.txt"], "/out/").unwrap();
    // Copied under the link's name, with the target's content, as a regular file.
    assert!(
        fs::symlink_metadata(f.out("out/link.txt"))
            .unwrap()
            .is_file()
    );
    assert_eq!(f.read("out/link.txt"), "real");
}

#[test]
fn sources_outside_the_context_are_confined_to_it() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "s").unwrap();
    symlink(outside.path().join("secret"), f.ctx.path().join("escape")).unwrap();
    f.file("x", "inside");
    // ../x is the context's own x.
    f.copy(&["../x"], "/a").unwrap();
    assert_eq!(f.read("a"), "inside");
    // A link to a host path resolves inside the context, where it does not exist.
    let err = f.copy(&["escape"], "/b").unwrap_err();
    assert!(matches!(err, CopyError::SourceNotFound { .. }), "{err}");
    assert!(!f.out("b").exists());
}

#[test]
fn hardlinks_within_a_copy_are_kept() {
    let f = Fixture::new();
    f.file("d/one", "same");
    fs::hard_link(f.ctx.path().join("d/one"), f.ctx.path().join("d/two")).unwrap();
    let stats = f.copy(&["d"], "/out").unwrap();
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(
        fs::metadata(f.out("out/one")).unwrap().ino(),
        fs::metadata(f.out("out/two")).unwrap().ino()
    );
}

#[test]
fn empty_directories_are_kept() {
    let f = Fixture::new();
    fs::create_dir_all(f.ctx.path().join("d/empty")).unwrap();
    f.copy(&["d"], "/out").unwrap();
    assert!(f.out("out/empty").is_dir());
}

#[test]
fn context_files_are_owned_by_root_unless_chown() {
    let f = Fixture::new();
    f.file("a", "a");
    std::os::unix::fs::chown(f.ctx.path().join("a"), Some(1234), Some(5678)).unwrap();
    f.copy(&["a"], "/root-owned").unwrap();
    assert_eq!(owner(&f.out("root-owned")), (0, 0));

    let mut s = spec(&["a"], "/chowned/");
    s.chown = Some("1000:2000".into());
    f.copy_spec(s).unwrap();
    assert_eq!(owner(&f.out("chowned/a")), (1000, 2000));
    assert_eq!(
        owner(&f.out("chowned")),
        (1000, 2000),
        "created parents get the --chown user"
    );
}

#[test]
fn chown_names_resolve_in_the_destination_rootfs() {
    let f = Fixture::new();
    f.file("a", "a");
    fs::create_dir(f.out("etc")).unwrap();
    fs::write(
        f.out("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
    )
    .unwrap();
    fs::write(f.out("etc/group"), "root:x:0:\nwww:x:34:\n").unwrap();
    let mut s = spec(&["a"], "/a");
    s.chown = Some("web:www".into());
    f.copy_spec(s).unwrap();
    assert_eq!(owner(&f.out("a")), (33, 34));
    let mut s = spec(&["a"], "/b");
    s.chown = Some("ghost".into());
    assert!(matches!(f.copy_spec(s), Err(CopyError::UnknownUser { .. })));
}

#[test]
fn chmod_applies_to_files_and_directories() {
    let f = Fixture::new();
    f.file("d/f", "f");
    fs::set_permissions(f.ctx.path().join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    let mut s = spec(&["d"], "/oct");
    s.chmod = Some("0750".into());
    f.copy_spec(s).unwrap();
    assert_eq!(mode(&f.out("oct/f")), 0o750);
    // BuildKit creates the destination directory itself like a parent (0755); --chmod applies
    // to what is copied into it.
    assert_eq!(mode(&f.out("oct")), 0o755);

    fs::create_dir(f.ctx.path().join("d/sub")).unwrap();
    fs::set_permissions(
        f.ctx.path().join("d/sub"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mut s = spec(&["d"], "/sym");
    s.chmod = Some("go+rX".into());
    f.copy_spec(s).unwrap();
    assert_eq!(mode(&f.out("sym/f")), 0o644);
    assert_eq!(mode(&f.out("sym/sub")), 0o755);
}

#[test]
fn modes_and_mtimes_are_preserved_from_the_source() {
    let f = Fixture::new();
    f.file("x", "x");
    let p = f.ctx.path().join("x");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4751)).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 123_456_789);
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(when)
        .unwrap();
    f.copy(&["x"], "/x").unwrap();
    assert_eq!(mode(&f.out("x")), 0o4751);
    assert_eq!(fs::metadata(f.out("x")).unwrap().modified().unwrap(), when);
}

#[test]
fn a_directory_over_a_file_is_an_error() {
    let f = Fixture::new();
    f.file("d/a", "a");
    fs::write(f.out("target"), "file").unwrap();
    let err = f.copy(&["d"], "/target").unwrap_err();
    assert_eq!(err.to_string(), "cannot copy to non-directory: /target");
}

#[test]
fn a_file_over_a_directory_inside_a_copied_tree_is_an_error() {
    let f = Fixture::new();
    f.file("d/name", "file");
    fs::create_dir_all(f.out("out/name")).unwrap();
    fs::create_dir_all(f.out("out/name/inner")).unwrap();
    let err = f.copy(&["d"], "/out").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot replace to directory /out/name with file"
    );
}

#[test]
fn an_existing_file_or_symlink_is_replaced_not_written_through() {
    let f = Fixture::new();
    f.file("d/conf", "new");
    fs::create_dir_all(f.out("out")).unwrap();
    fs::create_dir_all(f.out("etc")).unwrap();
    fs::write(f.out("etc/conf"), "precious").unwrap();
    symlink("/etc/conf", f.out("out/conf")).unwrap();
    f.copy(&["d"], "/out").unwrap();
    assert_eq!(f.read("out/conf"), "new");
    assert!(fs::symlink_metadata(f.out("out/conf")).unwrap().is_file());
    assert_eq!(f.read("etc/conf"), "precious");
}

#[test]
fn destination_symlinks_never_leave_the_rootfs() {
    let f = Fixture::new();
    f.file("payload", "p");
    let host = tempfile::tempdir().unwrap();
    // An absolute link to a host directory, and a relative one climbing out.
    symlink(host.path(), f.out("abs")).unwrap();
    symlink("../../../../../../../../tmp", f.out("rel")).unwrap();
    fs::create_dir_all(f.out(host.path().strip_prefix("/").unwrap())).unwrap();
    f.copy(&["payload"], "/abs/").unwrap();
    assert!(
        !host.path().join("payload").exists(),
        "nothing written to the host"
    );
    assert!(
        f.out(host.path().strip_prefix("/").unwrap())
            .join("payload")
            .exists(),
        "re-rooted inside"
    );
    fs::create_dir_all(f.out("tmp")).unwrap();
    f.copy(&["payload"], "/rel/").unwrap();
    assert!(f.out("tmp/payload").exists());
}

#[test]
fn dockerignored_files_are_not_copied() {
    let mut f = Fixture::new();
    f.file("keep", "k")
        .file("secret.env", "s")
        .file("logs/a.log", "l");
    f.ignore = "*.env\nlogs\n".into();
    f.copy(&["."], "/app/").unwrap();
    assert!(f.out("app/keep").exists());
    assert!(!f.out("app/secret.env").exists());
    assert!(!f.out("app/logs").exists());
    let err = f.copy(&["secret.env"], "/x").unwrap_err();
    assert!(matches!(err, CopyError::SourceNotFound { .. }));
}

#[test]
fn exclude_filters_copied_paths() {
    let f = Fixture::new();
    f.file("d/a.txt", "a")
        .file("d/b.md", "b")
        .file("d/sub/c.md", "c")
        .file("d/sub/keep.md", "k");
    let mut s = spec(&["d"], "/out");
    s.select = SelectOptions {
        exclude: vec!["*.md".into(), "sub/*.md".into(), "!sub/keep.md".into()],
        parents: false,
    };
    f.copy_spec(s).unwrap();
    assert!(f.out("out/a.txt").exists());
    assert!(!f.out("out/b.md").exists());
    assert!(!f.out("out/sub/c.md").exists());
    assert!(f.out("out/sub/keep.md").exists());

    // Wildcard matches are filtered too.
    let mut s = spec(&["d/*"], "/w/");
    s.select.exclude = vec!["*.md".into()];
    f.copy_spec(s).unwrap();
    assert!(f.out("w/a.txt").exists() && !f.out("w/b.md").exists());
}

#[test]
fn parents_keeps_the_source_path_below_the_destination() {
    let f = Fixture::new();
    f.file("a/b/c.txt", "c")
        .file("a/other.txt", "o")
        .file("x/y/z.txt", "z");
    let mut s = spec(&["a/b/c.txt", "x/./y/z.txt"], "/out/");
    s.select.parents = true;
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("out/a/b/c.txt"), "c");
    assert!(!f.out("out/a/other.txt").exists());
    assert_eq!(
        f.read("out/y/z.txt"),
        "z",
        "the /./ pivot drops what precedes it"
    );

    let mut s = spec(&["*/b/*.txt"], "/glob/");
    s.select.parents = true;
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("glob/a/b/c.txt"), "c");
    assert!(!f.out("glob/x").exists());
}

#[test]
fn copy_from_another_rootfs_keeps_ownership() {
    let f = Fixture::new();
    let stage = tempfile::tempdir().unwrap();
    fs::create_dir_all(stage.path().join("bin")).unwrap();
    fs::write(stage.path().join("bin/tool"), "#!").unwrap();
    std::os::unix::fs::chown(stage.path().join("bin/tool"), Some(7), Some(8)).unwrap();
    let tree = DirTree::new(stage.path());
    let prepared = copy::prepare(&tree, &spec(&["/bin/tool"], "/usr/local/bin/")).unwrap();
    copy::execute(f.root.path(), &tree, &prepared).unwrap();
    assert_eq!(owner(&f.out("usr/local/bin/tool")), (7, 8));
}

#[test]
fn checksum_changes_exactly_when_the_layer_would() {
    let f = Fixture::new();
    f.file("d/a", "one").file("d/b", "two");
    let sum = |s: &CopySpec| {
        let ctx = f.context();
        copy::checksum(&ctx, &copy::prepare(&ctx, s).unwrap()).unwrap()
    };
    let base = spec(&["d"], "/out");
    let first = sum(&base);
    assert_eq!(sum(&base), first, "stable");

    // mtime only: same key.
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(f.ctx.path().join("d/a"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    assert_eq!(sum(&base), first, "mtime never changes the key");

    // content, mode, name, chmod, chown: different keys.
    fs::write(f.ctx.path().join("d/a"), "ONE").unwrap();
    let content = sum(&base);
    assert_ne!(content, first);
    fs::set_permissions(f.ctx.path().join("d/a"), fs::Permissions::from_mode(0o700)).unwrap();
    let perm = sum(&base);
    assert_ne!(perm, content);
    fs::rename(f.ctx.path().join("d/b"), f.ctx.path().join("d/c")).unwrap();
    let renamed = sum(&base);
    assert_ne!(renamed, perm);
    let mut chmod = base.clone();
    chmod.chmod = Some("644".into());
    assert_ne!(sum(&chmod), renamed);
    let mut chown = base.clone();
    chown.chown = Some("1:1".into());
    assert_ne!(sum(&chown), renamed);
}

fn targz(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o640);
        header.set_uid(1001);
        header.set_gid(1002);
        header.set_mtime(1_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, name, content.as_bytes())
            .unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_extracts_local_archives_keeping_their_ownership() {
    let f = Fixture::new();
    fs::write(
        f.ctx.path().join("bundle.bin"),
        targz(&[("app/main.txt", "main")]),
    )
    .unwrap();
    let mut s = spec(&["bundle.bin"], "/opt/");
    s.is_add = true;
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("opt/app/main.txt"), "main");
    assert_eq!(owner(&f.out("opt/app/main.txt")), (1001, 1002));
    assert_eq!(mode(&f.out("opt/app/main.txt")), 0o640);
}

#[test]
fn copy_never_extracts_and_add_copies_non_archives() {
    let f = Fixture::new();
    fs::write(f.ctx.path().join("bundle.tar.gz"), targz(&[("x", "x")])).unwrap();
    f.file("notes.tar", "not really a tar");
    f.copy(&["bundle.tar.gz"], "/copied/").unwrap();
    assert!(f.out("copied/bundle.tar.gz").is_file());
    let mut s = spec(&["notes.tar"], "/added/");
    s.is_add = true;
    f.copy_spec(s).unwrap();
    assert_eq!(f.read("added/notes.tar"), "not really a tar");
    let mut s = spec(&["bundle.tar.gz"], "/kept/");
    s.is_add = true;
    s.unpack = Some(false);
    f.copy_spec(s).unwrap();
    assert!(
        f.out("kept/bundle.tar.gz").is_file(),
        "ADD --unpack=false copies the archive"
    );
}

#[test]
fn heredoc_sources_are_root_owned_0644_files() {
    let f = Fixture::new();
    let scratch = tempfile::tempdir().unwrap();
    let (tree, names) = copy::heredoc_tree(
        scratch.path(),
        &[
            ("greeting".into(), "hi\n".into()),
            ("conf/app.ini".into(), "[a]\n".into()),
        ],
    )
    .unwrap();
    let s = CopySpec {
        sources: names,
        dest: "/etc/app/".into(),
        workdir: "/".into(),
        ..Default::default()
    };
    let prepared = copy::prepare(&tree, &s).unwrap();
    copy::execute(f.root.path(), &tree, &prepared).unwrap();
    assert_eq!(f.read("etc/app/greeting"), "hi\n");
    assert_eq!(f.read("etc/app/app.ini"), "[a]\n");
    assert_eq!(mode(&f.out("etc/app/greeting")), 0o644);
    assert_eq!(owner(&f.out("etc/app/greeting")), (0, 0));
}
