//! Lists are ordered and paginated with `?limit=&cursor=`.

use crate::both;
use crate::helpers::{Backend, TestApp};
use serde_json::{json, Value};

/// Walks every page of `path` with `limit`, returning the `key` of each
/// item and the number of pages.
async fn walk(app: &TestApp, path: &str, limit: u32, key: &str) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = app.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let body = r.json();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        out.extend(items.iter().map(|i| i[key].as_str().unwrap().to_string()));
        pages += 1;
        match &body["next_cursor"] {
            Value::String(c) => {
                assert_eq!(items.len(), limit as usize, "short page before the end");
                cursor = Some(c.clone());
            }
            Value::Null => break,
            other => panic!("next_cursor {other}"),
        }
        assert!(pages < 100);
    }
    (out, pages)
}

async fn pagination(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    // Codes chosen so bytewise order differs from most locales' collation.
    let codes = ["z", "a_1", "b", "a-1", "0x", "a1", "c"];
    for c in codes {
        app.create_namespace(c).await;
    }
    let mut sorted: Vec<String> = codes.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    let (got, pages) = walk(&app, "/api/v1/namespaces", 3, "code").await;
    assert_eq!(got, sorted);
    assert_eq!(pages, 3);
    // Exactly a page's worth: no empty trailing page.
    let (got, pages) = walk(&app, "/api/v1/namespaces", 7, "code").await;
    assert_eq!(got, sorted);
    assert_eq!(pages, 1);
    let (got, _) = walk(&app, "/api/v1/namespaces", 1, "code").await;
    assert_eq!(got, sorted);
    // Default page size covers them all.
    let all = app.get("/api/v1/namespaces").await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_cursor"], Value::Null);

    for name in ["m-3", "m-1", "m-2"] {
        app.create_model(name).await;
    }
    assert_eq!(
        walk(&app, "/api/v1/models", 2, "name").await.0,
        ["m-1", "m-2", "m-3"]
    );

    for (i, ns) in [("i-4", "a1"), ("i-2", "b"), ("i-3", "a1"), ("i-1", "a1")] {
        app.create_instance(i, ns, "m-1", None).await;
    }
    assert_eq!(
        walk(&app, "/api/v1/instances", 3, "id").await.0,
        ["i-1", "i-2", "i-3", "i-4"]
    );
    assert_eq!(
        walk(&app, "/api/v1/instances?namespace=a1", 2, "id")
            .await
            .0,
        ["i-1", "i-3", "i-4"]
    );

    // Keys come in creation order.
    let mut ids = Vec::new();
    for n in 0..5 {
        let r = app
            .post(
                "/api/v1/namespaces/b/api-keys",
                json!({ "name": format!("k{n}") }),
            )
            .await;
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let (got, pages) = walk(&app, "/api/v1/namespaces/b/api-keys", 2, "id").await;
    assert_eq!(got, ids);
    assert_eq!(pages, 3);
    let (names, _) = walk(&app, "/api/v1/namespaces/b/api-keys", 2, "name").await;
    assert_eq!(names, ["k0", "k1", "k2", "k3", "k4"]);

    for bad in ["0", "-1", "501"] {
        let e = app
            .get(&format!("/api/v1/namespaces?limit={bad}"))
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], "limit");
    }
    assert_eq!(app.get("/api/v1/namespaces?limit=500").await.status, 200);
}
both!(pagination);
