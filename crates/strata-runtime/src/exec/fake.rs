//! [`FakeExecutor`]: an executor for the tests of its callers. It runs nothing; it records
//! every run and plays back scripted results: output, files written into the rootfs, an exit
//! code.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::output::deliver;
use super::{ExecError, Executor, ExitStatus, RunFuture, Stdio};
use crate::fsutil::{IoContext, PathError};
use crate::inroot::resolve_in_root;
use crate::spec::ProcessSpec;

/// What one fake run does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeRun {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Files written into the rootfs (absolute in-root paths, parents created), as if the
    /// process had written them.
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

/// One run the fake was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRun {
    pub spec: ProcessSpec,
    pub rootfs: PathBuf,
}

/// Records runs and plays back [`FakeRun`]s in order (a run past the script exits 0 silently).
#[derive(Debug, Default)]
pub struct FakeExecutor {
    script: Mutex<std::collections::VecDeque<FakeRun>>,
    runs: Mutex<Vec<RecordedRun>>,
}

impl FakeExecutor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fake that plays back `script`, one entry per run.
    pub fn scripted(script: impl IntoIterator<Item = FakeRun>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            runs: Mutex::default(),
        }
    }

    /// The runs so far, in order.
    pub fn runs(&self) -> Vec<RecordedRun> {
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    async fn fake_run(
        &self,
        spec: &ProcessSpec,
        rootfs: &Path,
        mut stdio: Stdio,
    ) -> Result<ExitStatus, ExecError> {
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(RecordedRun {
                spec: spec.clone(),
                rootfs: rootfs.to_path_buf(),
            });
        let next = self
            .script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front()
            .unwrap_or_default();
        for (path, contents) in &next.files {
            write_in_root(rootfs, path, contents)?;
        }
        let stream_error = |stream: &'static str| {
            move |source| ExecError::Stream {
                stream,
                id: "fake".to_owned(),
                source,
            }
        };
        deliver(&next.stdout, &mut stdio.stdout)
            .await
            .map_err(stream_error("stdout"))?;
        deliver(&next.stderr, &mut stdio.stderr)
            .await
            .map_err(stream_error("stderr"))?;
        Ok(ExitStatus::from_code(next.exit_code))
    }
}

/// Write `contents` at `path` inside `rootfs`, symlinks resolved in-root.
fn write_in_root(rootfs: &Path, path: &Path, contents: &[u8]) -> Result<(), PathError> {
    let resolved = resolve_in_root(rootfs, path)?;
    let host = rootfs.join(resolved.path.strip_prefix("/").unwrap_or(&resolved.path));
    if let Some(parent) = host.parent() {
        std::fs::create_dir_all(parent).at("create directory", parent)?;
    }
    std::fs::write(&host, contents).at("write", &host)
}

impl Executor for FakeExecutor {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn run<'a>(&'a self, spec: &'a ProcessSpec, rootfs: &'a Path, stdio: Stdio) -> RunFuture<'a> {
        Box::pin(self.fake_run(spec, rootfs, stdio))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::exec::{OutputSink, StdinSource};

    #[tokio::test]
    async fn records_runs_and_plays_the_script_back() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("etc-link")).unwrap();
        let fake = FakeExecutor::scripted([FakeRun {
            exit_code: 2,
            stdout: b"one\ntwo\n".to_vec(),
            stderr: b"oops".to_vec(),
            files: vec![(PathBuf::from("/etc-link/made/by/run"), b"x".to_vec())],
        }]);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let stdio = Stdio {
            stdin: StdinSource::Null,
            stdout: OutputSink::Lines(Box::new(move |l| seen.lock().unwrap().push(l.to_vec()))),
            stderr: OutputSink::Null,
        };
        let spec = ProcessSpec::new(vec!["make".into()]);
        let status = fake.run(&spec, root.path(), stdio).await.unwrap();
        assert_eq!(status.code(), 2);
        assert_eq!(
            *lines.lock().unwrap(),
            [b"one\n".to_vec(), b"two\n".to_vec()]
        );
        assert_eq!(
            std::fs::read(root.path().join("etc/made/by/run")).unwrap(),
            b"x",
            "written in-root, through the symlink"
        );
        let second = fake.run(&spec, root.path(), Stdio::null()).await.unwrap();
        assert!(second.success(), "past the script: exit 0");
        let runs = fake.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].spec.args, ["make"]);
        assert_eq!(runs[0].rootfs, root.path());
    }
}
