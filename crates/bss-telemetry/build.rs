//! Records the git revision the binaries are built from, for `--version`, the start-up log line and
//! the `bss_build_info` metric: `BSS_GIT_REVISION` when set (a build from a source archive, e.g. an
//! image build without `.git`), else `git rev-parse`, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=BSS_GIT_REVISION");
    let revision = match std::env::var("BSS_GIT_REVISION") {
        Ok(revision) if !revision.trim().is_empty() => revision.trim().to_owned(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points to (a commit).
            if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                println!("cargo:rerun-if-changed={git_dir}/HEAD");
                if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    println!("cargo:rerun-if-changed={git_dir}/{branch}");
                }
                println!("cargo:rerun-if-changed={git_dir}/packed-refs");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=BSS_GIT_REVISION={revision}");
}
