//! Every command and option of `bss` is documented in `docs/toolkit.md`.

const BSS: &str = env!("CARGO_BIN_EXE_bss");

fn help(args: &[&str]) -> String {
    let output = std::process::Command::new(BSS)
        .args(args)
        .arg("--help")
        .output()
        .expect("bss runs");
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).expect("utf8")
}

#[test]
fn every_command_and_option_is_in_the_toolkit_reference() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/toolkit.md"
    ))
    .expect("docs/toolkit.md");
    let commands: &[&[&str]] = &[
        &["offsets", "show"],
        &["offsets", "reset"],
        &["load"],
        &["dump"],
        &["inspect", "topics"],
        &["inspect", "objects"],
        &["inspect", "read"],
        &["verify"],
        &["organize"],
        &["catalog", "rebuild"],
        &["catalog", "compact"],
        &["catalog", "show"],
        &["prune"],
        &["erase"],
    ];
    let mut missing = Vec::new();
    for command in commands {
        let name = format!("bss {}", command.join(" "));
        if !docs.contains(&name) {
            missing.push(name.clone());
        }
        let text = help(command);
        let options = text
            .split(|c: char| c.is_whitespace() || c == ',' || c == '`')
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()));
        for option in options {
            if option != "--help" && !docs.contains(option) {
                missing.push(format!("{name} {option}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in docs/toolkit.md: {missing:?}");
}
