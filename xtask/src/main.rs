//! `cargo run -p xtask -- COMMAND DIR`: writes into DIR what the Debian package installs
//! besides the binary (`scripts/build-deb.sh` lays them out):
//!
//! - `man`: `proxcage.8` and a page for every subcommand (`proxcage-create.8`,
//!   `proxcage-bundle-create.8` ...), from the clap command `proxcage` parses with;
//! - `completions`: `proxcage.bash`, `_proxcage` (zsh) and `proxcage.fish`, from the same;
//! - `readme-files`: each fenced block of README.md that a `<!-- file: NAME -->` line
//!   marks, as DIR/NAME (the config file and the containerd, podman and Kubernetes
//!   examples), so the README stays their one copy.

use std::fs;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    about = "Generates the files the Debian package installs"
)]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Man pages, section 8: proxcage.8 and proxcage-SUBCOMMAND.8
    Man { dir: PathBuf },
    /// Shell completions: proxcage.bash, _proxcage (zsh), proxcage.fish
    Completions { dir: PathBuf },
    /// The files README.md holds, each after a `<!-- file: NAME -->` line
    ReadmeFiles {
        dir: PathBuf,
        /// The README to read
        #[arg(long, default_value = "README.md")]
        readme: PathBuf,
    },
}

fn main() {
    let xtask = Xtask::parse();
    let result = match &xtask.task {
        Task::Man { dir } => create_dir(dir).and_then(|()| man_pages(dir)),
        Task::Completions { dir } => create_dir(dir).and_then(|()| completions(dir)),
        Task::ReadmeFiles { dir, readme } => {
            create_dir(dir).and_then(|()| readme_files(readme, dir))
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn man_pages(dir: &Path) -> Result<(), String> {
    let version = env!("CARGO_PKG_VERSION");
    // clap's own `help` subcommand says what `--help` says: no page of its own.
    let mut top = proxcage_cli_args::Cli::command().disable_help_subcommand(true);
    top.build();
    let mut pending = vec![top];
    while let Some(cmd) = pending.pop() {
        pending.extend(
            cmd.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .cloned(),
        );
        // Built, subcommands are named `proxcage-create`, `proxcage-bundle-create`, and
        // have the global flags.
        let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .section("8")
            .manual("System Manager's Manual")
            .source(format!("proxcage {version}"))
            .render(&mut page)
            .map_err(|e| format!("cannot render the man page of {name}: {e}"))?;
        write(&dir.join(format!("{name}.8")), &page)?;
    }
    Ok(())
}

fn completions(dir: &Path) -> Result<(), String> {
    let mut cmd = proxcage_cli_args::Cli::command();
    for (shell, file) in [
        (Shell::Bash, "proxcage.bash"),
        (Shell::Zsh, "_proxcage"),
        (Shell::Fish, "proxcage.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "proxcage", &mut script);
        write(&dir.join(file), &script)?;
    }
    Ok(())
}

fn readme_files(readme: &Path, dir: &Path) -> Result<(), String> {
    let text =
        fs::read_to_string(readme).map_err(|e| format!("cannot read {}: {e}", readme.display()))?;
    let files = marked_blocks(&text).map_err(|e| format!("{}: {e}", readme.display()))?;
    for (name, body) in files {
        write(&dir.join(name), body.as_bytes())?;
    }
    Ok(())
}

/// The fenced blocks after `<!-- file: NAME -->` lines, as (NAME, contents); an error
/// names the line of a marker without a block, a block without its end, or a name that
/// is not a plain file name or comes twice.
fn marked_blocks(text: &str) -> Result<Vec<(&str, String)>, String> {
    let mut files: Vec<(&str, String)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((at, line)) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- file:")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim)
        else {
            continue;
        };
        let marker = at + 1;
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(format!("line {marker}: {name:?} is not a file name"));
        }
        if files.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("line {marker}: a second block for {name}"));
        }
        let fence = lines
            .by_ref()
            .map(|(_, line)| line)
            .find(|line| !line.trim().is_empty())
            .filter(|line| line.starts_with("```"))
            .ok_or(format!("line {marker}: no ``` block follows {name}"))?;
        let ticks = &fence[..fence.len() - fence.trim_start_matches('`').len()];
        let mut body = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            if line.trim_end() == ticks {
                closed = true;
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        if !closed {
            return Err(format!("line {marker}: the block for {name} never ends"));
        }
        files.push((name, body));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_blocks_are_taken_word_for_word() {
        let text = "# t\n<!-- file: a.toml -->\n\n```toml\nx = 1\n\n# c\n```\n\
                    ```sh\nnot marked\n```\n<!-- file: b.yaml -->\n```yaml\nk: v\n```\n";
        assert_eq!(
            marked_blocks(text).unwrap(),
            [
                ("a.toml", "x = 1\n\n# c\n".to_owned()),
                ("b.yaml", "k: v\n".to_owned())
            ]
        );
    }

    #[test]
    fn a_bad_marker_is_an_error_with_its_line() {
        for (text, words) in [
            (
                "\n<!-- file: a -->\ntext\n```\nx\n```\n",
                "line 2: no ``` block",
            ),
            (
                "<!-- file: a -->\n```\nx\n",
                "line 1: the block for a never ends",
            ),
            (
                "<!-- file: ../a -->\n```\nx\n```\n",
                "line 1: \"../a\" is not a file name",
            ),
            (
                "<!-- file: a -->\n```\nx\n```\n<!-- file: a -->\n```\ny\n```\n",
                "line 5: a second block for a",
            ),
        ] {
            let err = marked_blocks(text).unwrap_err();
            assert!(err.contains(words), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_readme_holds_the_files_the_package_installs() {
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = fs::read_to_string(readme).unwrap();
        let names: Vec<&str> = marked_blocks(&text)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for name in [
            "config.toml",
            "containerd-config.toml",
            "kubernetes-runtimeclass.yaml",
            "podman-containers.conf",
        ] {
            assert!(
                names.contains(&name),
                "README.md has no block for {name}: {names:?}"
            );
        }
    }

    #[test]
    fn every_subcommand_gets_a_man_page_and_bash_completes_it() {
        let dir = tempfile::tempdir().unwrap();
        man_pages(dir.path()).unwrap();
        for page in [
            "proxcage.8",
            "proxcage-create.8",
            "proxcage-kill.8",
            "proxcage-bundle.8",
            "proxcage-bundle-create.8",
            "proxcage-template-create.8",
            "proxcage-lxc-config.8",
            "proxcage-health.8",
        ] {
            let text = fs::read_to_string(dir.path().join(page)).unwrap();
            assert!(text.contains(".TH "), "{page}: {text}");
        }
        let create = fs::read_to_string(dir.path().join("proxcage-create.8")).unwrap();
        assert!(create.contains("pid\\-file"), "{create}");
        // Every page a page names is there.
        for page in fs::read_dir(dir.path()).unwrap() {
            let text = fs::read_to_string(page.unwrap().path()).unwrap();
            for named in text
                .split_whitespace()
                .filter_map(|w| w.strip_suffix("(8)"))
            {
                let file = format!("{}.8", named.replace("\\-", "-"));
                assert!(dir.path().join(&file).exists(), "{named}(8) has no page");
            }
        }
        completions(dir.path()).unwrap();
        let bash = fs::read_to_string(dir.path().join("proxcage.bash")).unwrap();
        assert!(bash.contains("complete -F _proxcage"), "{bash}");
        assert!(bash.contains("--console-socket"), "{bash}");
    }
}
