//! `snip key create|list|revoke`.

use super::*;

/// `key create` prints only the new secret on stdout (a key that works at once, with its
/// role), `--json` the key object; `key list` shows keys without secrets (table and `--json`);
/// a user key may not list keys (3); `key revoke` makes a key fail (3), a second revoke is
/// 4, and the last active admin key is refused (5); an unknown role is a usage error.
#[tokio::test]
async fn key_create_list_and_revoke() {
    let server = start_server(&[]);
    let sandbox = Sandbox::new();
    let admin = sandbox.remote(&server);

    let keys = admin.run(&["key", "list", "--json"]).json();
    let items = keys.as_array().expect("key list --json is an array");
    assert_eq!(items.len(), 1, "{keys}");
    let admin_id = items[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(items[0]["role"], "admin");
    admin
        .run(&["key", "revoke", &admin_id])
        .problem(5, "last_admin");
    admin.run(&["key", "list"]).ok();

    let created = admin.run(&["key", "create", "--role", "user", "--name", "alice"]);
    let alice_key = created.ok().trim().to_owned();
    assert_eq!(
        created.stdout.lines().count(),
        1,
        "only the secret on stdout: {}",
        created.context()
    );
    assert!(
        alice_key.starts_with("snip_") && alice_key.len() >= 37,
        "{}",
        created.context()
    );
    let alice = sandbox.remote_as(&server.base, &alice_key);
    let link = alice.run(&["link", "create", "https://example.com/alice", "--json"]);
    let alice_code = common::code_of(&link.json());
    assert_eq!(
        codes(&alice.run(&["link", "list", "--json"]).json()),
        [alice_code]
    );
    alice.run(&["key", "list"]).problem(3, "forbidden");
    alice
        .run(&["key", "create", "--role", "admin"])
        .problem(3, "forbidden");

    let ops = admin
        .run(&[
            "key", "create", "--role", "admin", "--name", "ops", "--json",
        ])
        .json();
    assert_eq!(ops["role"], "admin");
    assert_eq!(ops["name"], "ops");
    let ops_key = ops["key"]
        .as_str()
        .expect("--json has the secret")
        .to_owned();
    let ops_id = ops["id"].as_str().expect("id").to_owned();
    let ops_cli = sandbox.remote_as(&server.base, &ops_key);
    let table = ops_cli.run(&["key", "list"]);
    for name in ["alice", "ops"] {
        assert!(
            table.ok().lines().any(|l| l.contains(name)),
            "{name}: {}",
            table.context()
        );
    }
    assert!(!table.ok().contains(&alice_key), "no secret in the table");

    let listed = admin.run(&["key", "list", "--json"]).json();
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for key in listed {
        let object = key.as_object().expect("key objects");
        let mut members: Vec<&str> = object.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["created_at", "id", "name", "role"], "{key}");
    }
    let alice_id = listed
        .iter()
        .find(|k| k["name"] == "alice")
        .and_then(|k| k["id"].as_str())
        .expect("alice is listed")
        .to_owned();
    assert!(listed.iter().any(|k| k["id"] == ops_id.as_str()));

    let revoked = admin.run(&["key", "revoke", &alice_id]);
    revoked.ok();
    revoked.says(&format!("revoked {alice_id}"));
    alice.run(&["link", "list"]).problem(3, "unauthorized");
    admin
        .run(&["key", "revoke", &alice_id])
        .problem(4, "not_found");
    // With a second admin key, the first one may go.
    ops_cli.run(&["key", "revoke", &admin_id]).ok();
    admin.run(&["key", "list"]).problem(3, "unauthorized");

    ops_cli.run(&["key", "create", "--role", "owner"]).exits(2);
}
