//! `bss erase`: a key leaves the archive (objects rewritten under new names, the catalog repointed,
//! old objects deleted), audited, idempotent, and crash-safe: killed at each step, readers see the
//! old or the new state, never a mix, and the next run finishes the job. `bss verify` stays clean.

mod common;

use std::collections::BTreeSet;

use bss_format::Compression;
use bss_testkit::archive::{catalog_folder, write_objects};
use bss_testkit::{kafka_brokers, unique};
use common::{record, Run, Setup, BASE_MS};
use object_store::path::Path;
use object_store::ObjectStoreExt;

const KEY: &str = "alice";

/// (partition, offset, key) of every record `bss inspect read` printed; panics on a duplicate.
fn printed(run: &Run) -> BTreeSet<(i64, i64, String)> {
    let mut seen = BTreeSet::new();
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let row = (
            v["partition"].as_i64().expect("partition"),
            v["offset"].as_i64().expect("offset"),
            v["key"].as_str().expect("key").to_owned(),
        );
        assert!(seen.insert(row.clone()), "printed twice: {row:?}");
    }
    seen
}

/// Partition 0: the key at its first offset, inside an object and at an object's end; partition 1:
/// one whole object of the key. Objects of 10 records; returns every record and the object paths.
async fn archive_with_the_key(
    setup: &Setup,
    folder: &str,
) -> (BTreeSet<(i64, i64, String)>, Vec<String>) {
    let mut all = BTreeSet::new();
    let mut paths = Vec::new();
    for partition in 0..2i64 {
        let records: Vec<_> = (0..40i64)
            .map(|o| {
                let ours = match partition {
                    0 => [0, 14, 29].contains(&o),
                    _ => (10..20).contains(&o),
                };
                let key = if ours {
                    KEY.to_owned()
                } else {
                    format!("k{}", o % 7)
                };
                all.insert((partition, o, key.clone()));
                record(
                    folder,
                    partition as i32,
                    o,
                    BASE_MS + o * 1000,
                    &key,
                    Some("{}"),
                )
            })
            .collect();
        paths.extend(write_objects(&setup.store, folder, &records, 10, Compression::Zstd).await);
    }
    catalog_folder(&setup.store, folder).await;
    (all, paths)
}

async fn erase(setup: &Setup, folder: &str, failpoint: Option<&str>) -> Run {
    let mut command = setup.command(&[
        "erase",
        "--topic",
        folder,
        "--key",
        KEY,
        "--grace",
        "0s",
        "--requested-by",
        "dpo@example.com",
        "--reason",
        "ticket 42",
    ]);
    if let Some(point) = failpoint {
        command.env("BSS_FAILPOINT", point);
    }
    common::run(command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_erased_audited_and_verify_stays_clean() {
    let folder = unique("erase");
    let setup = Setup::new(
        &kafka_brokers(),
        &unique("erase-group"),
        &unique("erase-events"),
        &[(&folder, &folder)],
    );
    let (all, paths) = archive_with_the_key(&setup, &folder).await;
    let without: BTreeSet<_> = all.iter().filter(|(_, _, k)| k != KEY).cloned().collect();

    let dry = setup
        .bss(&["erase", "--topic", &folder, "--key", KEY, "--dry-run"])
        .await
        .ok();
    let plan: serde_json::Value = serde_json::from_str(dry.stdout.trim()).expect("json");
    assert_eq!(plan["records"], 13, "{plan}");
    assert_eq!(plan["objects"].as_array().map(Vec::len), Some(4), "{plan}");

    let done = erase(&setup, &folder, None).await.ok();
    let record: serde_json::Value = serde_json::from_str(done.stdout.trim()).expect("json");
    assert_eq!(
        (record["state"].as_str(), record["records"].as_u64()),
        (Some("complete"), Some(13))
    );
    assert!(
        done.stderr.contains("\"audit\":\"erasure\"")
            && done.stderr.contains("dpo@example.com")
            && !done.stderr.contains(KEY),
        "an audit line without the key itself: {}",
        done.stderr
    );
    let read = setup
        .bss(&["inspect", "read", "--topic", &folder])
        .await
        .ok();
    assert_eq!(printed(&read), without);
    let by_key = setup
        .bss(&["inspect", "read", "--topic", &folder, "--key", KEY])
        .await
        .ok();
    assert!(by_key.stdout.is_empty(), "{by_key:#?}");
    // The four objects that held the key are gone (three on partition 0, the second of partition
    // 1), the others untouched.
    for (n, path) in paths.iter().enumerate() {
        let held_the_key = [0, 1, 2, 5].contains(&n);
        assert_eq!(
            setup.store.head(&Path::from(path.as_str())).await.is_ok(),
            !held_the_key,
            "{path}"
        );
    }
    let verified = setup.bss(&["verify", "--topic", &folder]).await.ok();
    assert!(
        verified.stdout.contains("0 problems, 0 warnings")
            && verified.stdout.contains("offsets erased"),
        "{verified:#?}"
    );
    let again = erase(&setup, &folder, None).await.ok();
    let again: serde_json::Value = serde_json::from_str(again.stdout.trim()).expect("json");
    assert_eq!(again["records"], 0, "nothing left to erase: {again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_any_step_leaves_the_old_or_the_new_state_and_the_next_run_finishes() {
    for (point, erased_before_resume) in [
        ("erase-planned", false),
        ("erase-written", false),
        ("erase-repointed", true),
    ] {
        let folder = unique("erase-crash");
        let setup = Setup::new(
            &kafka_brokers(),
            &unique("erase-group"),
            &unique("erase-events"),
            &[(&folder, &folder)],
        );
        let (all, _) = archive_with_the_key(&setup, &folder).await;
        let without: BTreeSet<_> = all.iter().filter(|(_, _, k)| k != KEY).cloned().collect();

        let crashed = erase(&setup, &folder, Some(point)).await;
        assert_ne!(crashed.code, 0, "{point}: {crashed:#?}");
        assert!(
            crashed
                .stderr
                .contains(&format!("failpoint {point} reached")),
            "{crashed:#?}"
        );
        let read = setup
            .bss(&["inspect", "read", "--topic", &folder])
            .await
            .ok();
        let expected = if erased_before_resume { &without } else { &all };
        assert_eq!(
            &printed(&read),
            expected,
            "{point}: readers see one whole state"
        );
        let verified = setup
            .bss(&["verify", "--topic", &folder, "--json"])
            .await
            .ok();
        let report: serde_json::Value = serde_json::from_str(&verified.stdout).expect("json");
        assert_eq!(
            report["problems"],
            serde_json::json!([]),
            "{point}: {report}"
        );

        let resumed = erase(&setup, &folder, None).await.ok();
        assert!(
            resumed.stderr.contains("finishing an interrupted erasure"),
            "{point}: {resumed:#?}"
        );
        let read = setup
            .bss(&["inspect", "read", "--topic", &folder])
            .await
            .ok();
        assert_eq!(printed(&read), without, "{point}: finished");
        let verified = setup.bss(&["verify", "--topic", &folder]).await.ok();
        assert!(
            verified.stdout.contains("0 problems, 0 warnings"),
            "{point}: {verified:#?}"
        );
    }
}
