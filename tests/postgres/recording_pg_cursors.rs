//! A SQL cursor is a portal in the protocol's namespace: inside a
//! transaction, `CLOSE c; DECLARE c CURSOR FOR ...` replaces the portal a
//! Bind named "c", and an Execute of "c" then runs the cursor's query. The
//! same happens inside a PL/pgSQL function through a refcursor, run by a
//! statement or even by a Bind (a domain's CHECK on a parameter). The
//! recording must not show the bound text for it. Raw protocol messages
//! against the real PostgreSQL through the proxy.

use crate::recording_pg_names::{batch, msg, parse, recorded, recording_session, sync, terminate};

/// Bind of `stmt` to the portal `portal`, no parameters, text results.
fn bind_to(portal: &str, stmt: &str) -> Vec<u8> {
    msg(b'B', format!("{portal}\0{stmt}\0\0\0\0\0\0\0").as_bytes())
}

/// Bind of `stmt` to `portal` with one text parameter.
fn bind_one_param(portal: &str, stmt: &str, value: &str) -> Vec<u8> {
    let mut b = format!("{portal}\0{stmt}\0").into_bytes();
    b.extend_from_slice(&[0, 0, 0, 1]);
    b.extend_from_slice(&(value.len() as i32).to_be_bytes());
    b.extend_from_slice(value.as_bytes());
    b.extend_from_slice(&[0, 0]);
    msg(b'B', &b)
}

fn execute_portal(portal: &str) -> Vec<u8> {
    msg(b'E', format!("{portal}\0\0\0\0\0").as_bytes())
}

#[test]
fn a_cursor_declared_over_a_bound_portal_is_not_recorded_as_its_bind() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    assert!(s.query("BEGIN").is_ok());
    let (tags, _, codes) = batch(
        &mut s,
        &[parse("s1", "SELECT 'benign'"), bind_to("c", "s1"), sync()],
    );
    assert_eq!((tags.as_str(), codes), ("12Z", Vec::<String>::new()));
    assert!(s
        .query("CLOSE c; DECLARE c CURSOR FOR SELECT 'evil'")
        .is_ok());
    let (tags, rows, codes) = batch(&mut s, &[execute_portal("c"), sync()]);
    assert_eq!(codes, Vec::<String>::new());
    // The server ran the cursor's query, not the bound one.
    assert_eq!((tags.as_str(), rows), ("DCZ", vec!["evil".to_string()]));
    // The same through a function, run by an Execute: PL/pgSQL closes the
    // portal "d" and reopens it as its own cursor.
    let (tags, _, codes) = batch(
        &mut s,
        &[
            bind_to("d", "s1"),
            parse(
                "",
                "DO $$ DECLARE r refcursor := 'd'; BEGIN CLOSE r; OPEN r FOR SELECT 'evil too'; END $$",
            ),
            bind_to("", ""),
            execute_portal(""),
            sync(),
        ],
    );
    assert_eq!((tags.as_str(), codes), ("212CZ", Vec::<String>::new()));
    let (_, rows, codes) = batch(&mut s, &[execute_portal("d"), sync()]);
    assert_eq!(codes, Vec::<String>::new());
    assert_eq!(rows, ["evil too"]);
    // And through a Bind that runs no statement: a domain's CHECK on the
    // parameter reopens "e" while the unnamed portal is bound.
    assert!(s
        .query(
            "CREATE FUNCTION reopen_e(v int) RETURNS bool LANGUAGE plpgsql AS $$ \
             DECLARE r refcursor := 'e'; BEGIN CLOSE r; OPEN r FOR SELECT 'evil three'; \
             RETURN true; END $$; CREATE DOMAIN reopens_e AS int CHECK (reopen_e(VALUE))"
        )
        .is_ok());
    let (tags, _, codes) = batch(
        &mut s,
        &[
            bind_to("e", "s1"),
            parse("", "SELECT $1::reopens_e"),
            bind_one_param("", "", "1"),
            sync(),
        ],
    );
    assert_eq!((tags.as_str(), codes), ("212Z", Vec::<String>::new()));
    let (_, rows, codes) = batch(&mut s, &[execute_portal("e"), sync()]);
    assert_eq!(codes, Vec::<String>::new());
    assert_eq!(rows, ["evil three"]);
    assert!(s.query("COMMIT").is_ok());
    terminate(s);

    let lines = recorded(&p);
    let shown: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["statement"].as_str())
        .collect();
    assert_eq!(
        shown,
        [
            "BEGIN",
            "CLOSE c; DECLARE c CURSOR FOR SELECT 'evil'",
            "[jitgate: portal \"c\" not known to the recorder]",
            "DO $$ DECLARE r refcursor := 'd'; BEGIN CLOSE r; OPEN r FOR SELECT 'evil too'; END $$",
            "[jitgate: portal \"d\" not known to the recorder]",
            "CREATE FUNCTION reopen_e(v int) RETURNS bool LANGUAGE plpgsql AS $$ \
             DECLARE r refcursor := 'e'; BEGIN CLOSE r; OPEN r FOR SELECT 'evil three'; \
             RETURN true; END $$; CREATE DOMAIN reopens_e AS int CHECK (reopen_e(VALUE))",
            "[jitgate: portal \"e\" not known to the recorder]",
            "COMMIT"
        ],
        "{lines:?}"
    );
}
