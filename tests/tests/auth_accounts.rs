//! The built-in auth service end to end, against the real binary: configuration, sign-up and
//! sign-in, tokens the rest of the API accepts, refresh rotation, sessions, admin routes,
//! codes through the change log, and rate limits.

use ferrobase_tests::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

const NS: &str = "app";

struct Api {
    server: Server,
    _config: tempfile::TempDir,
    http: reqwest::Client,
    admin: String,
}

impl Api {
    fn start(config: &str) -> Api {
        let (server, dir) = Server::start_with_config(config).expect("server starts");
        let admin = server.token("admin", Some(NS), "ops").expect("admin token");
        Api {
            server,
            _config: dir,
            http: reqwest::Client::new(),
            admin,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/auth/{NS}{path}", self.server.url)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    async fn admin_put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.http
                .put(self.url(path))
                .bearer_auth(&self.admin)
                .json(&body),
        )
        .await
    }

    async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.admin))
            .await
    }

    async fn user_get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path)).bearer_auth(token))
            .await
    }

    async fn sign_in(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/token?grant_type=password",
            json!({"email": email, "password": password}),
        )
        .await
    }

    async fn refresh(&self, token: &Value) -> (StatusCode, Value) {
        self.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": token}),
        )
        .await
    }

    /// Events of `type_prefix` in the namespace's log, as an admin reads them.
    async fn events(&self, type_prefix: &str) -> Vec<Value> {
        let (status, body) = self
            .send(
                self.http
                    .get(format!(
                        "{}/v1/events/{NS}?type={type_prefix}&limit=1000",
                        self.server.url
                    ))
                    .bearer_auth(&self.admin),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

const OPEN: &str = "[auth]\nrefresh_reuse_grace = \"1min\"\n[auth.rate_limits]\nper_ip_per_minute = 0\nper_account_per_minute = 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_from_sign_up_to_admin() {
    let api = Api::start(OPEN);

    // Off until an admin switches it on; only admins configure it.
    let (status, body) = api
        .post(
            "/signup",
            json!({"email": "ada@example.com", "password": "long enough"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "permission_denied"),
        "{body}"
    );
    let (status, _) = api
        .send(
            api.http
                .put(api.url("/config"))
                .json(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api
        .admin_put(
            "/config",
            json!({"enabled": true, "min_password_length": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .admin_put("/config", json!({"enabled": true, "bogus": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.admin_get("/config").await;
    assert_eq!(
        (status, body["enabled"].clone()),
        (StatusCode::OK, json!(false)),
        "nothing written"
    );
    let (status, body) = api
        .admin_put("/config", json!({"enabled": true, "anonymous": true, "min_password_length": 10, "custom": {"brand": "x"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_token_ttl"], 3600);
    assert_eq!(body["custom"]["brand"], "x");

    // Sign-up: bad input is refused and writes nothing.
    for bad in [
        json!({"email": "not-an-email", "password": "long enough"}),
        json!({"email": "ada@example.com", "password": "short"}),
        json!({"email": "ada@example.com"}),
        json!({"email": "ada@example.com", "password": "long enough", "role": "admin"}),
    ] {
        let (status, body) = api.post("/signup", bad.clone()).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_argument"),
            "{bad} → {body}"
        );
    }
    assert!(api.events("ferrobase.auth.user.").await.is_empty());

    let (status, ada) = api
        .post(
            "/signup",
            json!({"email": "Ada@Example.com", "password": "long enough"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ada}");
    assert_eq!(ada["token_type"], "bearer");
    assert_eq!(ada["expires_in"], 3600);
    assert_eq!(ada["user"]["email"], "ada@example.com");
    assert_eq!(ada["user"]["anonymous"], false);
    assert!(ada["user"].get("password_hash").is_none());
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .post(
            "/signup",
            json!({"email": "ada@example.com", "password": "another one"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );

    // Sign-in: unknown user and wrong password answer alike.
    let (status, wrong) = api.sign_in("ada@example.com", "wrong password").await;
    let (status2, unknown) = api.sign_in("bob@example.com", "wrong password").await;
    assert_eq!(
        (status, status2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong, unknown);
    let (status, body) = api.post("/token?grant_type=magic", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, signed_in) = api.sign_in("ada@example.com", "long enough").await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let access = signed_in["access_token"].as_str().unwrap().to_owned();

    // The token works on the rest of the API under a `{sub}` policy.
    let policy = json!({"rules": [
        {"roles": ["user"], "actions": ["read", "write"], "resources": ["kv:users/{sub}/**"]}
    ]});
    let (status, _) = api
        .send(
            api.http
                .put(format!("{}/v1/policies/{NS}", api.server.url))
                .bearer_auth(&api.admin)
                .json(&policy),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let kv = |key: String| format!("{}/v1/kv/{NS}/{key}", api.server.url);
    let own = api
        .http
        .put(kv(format!("users/{ada_id}/todo")))
        .bearer_auth(&access)
        .body("milk")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let other = api
        .http
        .put(kv("users/someone-else/todo".into()))
        .bearer_auth(&access)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let elsewhere = api
        .http
        .get(format!(
            "{}/v1/kv/other/users/{ada_id}/todo",
            api.server.url
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        StatusCode::FORBIDDEN,
        "a token of one namespace only"
    );

    // JWKS, and key rotation: the old key verifies until its tokens expire.
    let (status, jwks) = api
        .send(api.http.get(api.url("/.well-known/jwks.json")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    let (status, rotated) = api
        .send(
            api.http
                .post(api.url("/admin/keys/rotate"))
                .bearer_auth(&api.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (_, jwks) = api
        .send(api.http.get(api.url("/.well-known/jwks.json")))
        .await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (status, me) = api.user_get("/user", &access).await;
    assert_eq!(
        (status, me["id"].as_str()),
        (StatusCode::OK, Some(ada_id.as_str())),
        "{me}"
    );
    let (_, after_rotation) = api.sign_in("ada@example.com", "long enough").await;
    let header = |token: &str| {
        use base64::Engine as _;
        let head = token.split('.').next().unwrap();
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(head)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        header(after_rotation["access_token"].as_str().unwrap())["kid"],
        rotated["kid"]
    );
    assert_ne!(header(&access)["kid"], rotated["kid"]);

    refresh_rotation_and_reuse(&api).await;
    sessions_and_password_change(&api).await;
    anonymous_then_linked(&api).await;
    codes_through_the_change_log(&api).await;
    admin_users(&api, &ada_id).await;
}

async fn refresh_rotation_and_reuse(api: &Api) {
    let (_, first) = api.sign_in("ada@example.com", "long enough").await;
    let t0 = first["refresh_token"].clone();
    // Two tabs refresh with the same token at once: both succeed, with the same successor.
    let (a, b) = tokio::join!(api.refresh(&t0), api.refresh(&t0));
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        b.1
    );
    assert_eq!(a.1["refresh_token"], b.1["refresh_token"]);
    let t1 = a.1["refresh_token"].clone();
    assert_ne!(t0, t1);
    let (status, second) = api.refresh(&t1).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let t2 = second["refresh_token"].clone();
    // A guess at the session is refused without ending it.
    let sid = t2.as_str().unwrap().split('.').nth(1).unwrap();
    let user = t2.as_str().unwrap().split('.').next().unwrap();
    let guess = json!(format!("{user}.{sid}.{}", "A".repeat(43)));
    assert_eq!(api.refresh(&guess).await.0, StatusCode::UNAUTHORIZED);
    // The stolen first token, replayed long after its rotation: the whole family ends.
    let (status, body) = api.refresh(&t0).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    let (status, _) = api.refresh(&t2).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the newest token of the family is revoked too"
    );
    let (status, _) = api
        .user_get("/user", second["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its session has ended");
    let revoked = api.events("ferrobase.auth.session.revoked").await;
    assert!(
        revoked
            .iter()
            .any(|e| e["data"]["reason"] == "refresh_token_reused" && e["data"]["session"] == sid)
    );
    for bad in [json!("nonsense"), json!(42)] {
        let (status, _) = api.refresh(&bad).await;
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST);
    }
}

async fn sessions_and_password_change(api: &Api) {
    let (_, one) = api.sign_in("ada@example.com", "long enough").await;
    let (_, two) = api.sign_in("ada@example.com", "long enough").await;
    let token_one = one["access_token"].as_str().unwrap();
    let token_two = two["access_token"].as_str().unwrap();
    let (status, list) = api.user_get("/sessions", token_one).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let sessions = list["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    // Bad updates write nothing.
    let (status, body) = api
        .send(
            api.http
                .put(api.url("/user"))
                .bearer_auth(token_one)
                .json(&json!({"password": "short"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(api.user_get("/user", token_two).await.0, StatusCode::OK);
    // A password change ends every other session.
    let (status, body) = api
        .send(
            api.http
                .put(api.url("/user"))
                .bearer_auth(token_one)
                .json(&json!({"password": "a new long one"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        api.user_get("/user", token_two).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.refresh(&two["refresh_token"]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.user_get("/user", token_one).await.0, StatusCode::OK);
    assert_eq!(
        api.sign_in("ada@example.com", "long enough").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, three) = api.sign_in("ada@example.com", "a new long one").await;
    assert_eq!(status, StatusCode::OK);
    // Revoking one session by id, then logging out.
    let sid = three["refresh_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let (status, _) = api
        .send(
            api.http
                .delete(api.url(&format!("/sessions/{sid}")))
                .bearer_auth(token_one),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .send(
            api.http
                .delete(api.url(&format!("/sessions/{sid}")))
                .bearer_auth(token_one),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.refresh(&three["refresh_token"]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = api
        .send(api.http.post(api.url("/logout")).bearer_auth(token_one))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.user_get("/user", token_one).await.0,
        StatusCode::UNAUTHORIZED
    );
    // An admin's own token is no session of the service.
    assert_eq!(
        api.user_get("/user", &api.admin).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn anonymous_then_linked(api: &Api) {
    let (status, anon) = api.post("/signup", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{anon}");
    assert_eq!(anon["user"]["anonymous"], true);
    assert_eq!(anon["user"]["email"], Value::Null);
    let token = anon["access_token"].as_str().unwrap();
    let (status, body) = api
        .send(
            api.http
                .put(api.url("/user"))
                .bearer_auth(token)
                .json(&json!({"email": "ada@example.com", "password": "linked password"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (status, linked) = api
        .send(
            api.http
                .put(api.url("/user"))
                .bearer_auth(token)
                .json(&json!({"email": "anon@example.com", "password": "linked password"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(
        (linked["anonymous"].clone(), linked["id"].clone()),
        (json!(false), anon["user"]["id"].clone())
    );
    let (status, again) = api.sign_in("anon@example.com", "linked password").await;
    assert_eq!(
        (status, again["user"]["id"].clone()),
        (StatusCode::OK, anon["user"]["id"].clone())
    );
}

async fn codes_through_the_change_log(api: &Api) {
    let requested = api.events("ferrobase.auth.verification_requested").await;
    let event = requested
        .iter()
        .find(|e| e["data"]["email"] == "ada@example.com")
        .expect("sign-up asked for verification");
    let code = event["data"]["code"].as_str().unwrap().to_owned();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = |code: &str| json!({"type": "signup", "email": "ada@example.com", "code": code});
    let (status, body) = api.post("/verify", verify(wrong)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.post("/verify", verify(&code)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email_verified"], true);
    let (status, _) = api.post("/verify", verify(&code)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");

    // Password reset: the same answer for unknown addresses, a code only for real ones.
    let (status, unknown) = api
        .post("/recover", json!({"email": "nobody@example.com"}))
        .await;
    let (status2, known) = api
        .post("/recover", json!({"email": "ada@example.com"}))
        .await;
    assert_eq!(
        (status, status2, unknown.clone()),
        (StatusCode::OK, StatusCode::OK, known)
    );
    let resets = api.events("ferrobase.auth.password_reset_requested").await;
    assert_eq!(resets.len(), 1);
    let code = resets[0]["data"]["code"].as_str().unwrap();
    let (status, body) = api
        .post(
            "/verify",
            json!({"type": "recovery", "email": "ada@example.com", "code": code}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "needs the new password: {body}"
    );
    let (status, body) = api
        .post("/verify", json!({"type": "recovery", "email": "ada@example.com", "code": code, "password": "reset password"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    assert_eq!(
        api.sign_in("ada@example.com", "reset password").await.0,
        StatusCode::OK
    );
    for kind in [
        "ferrobase.auth.user.created",
        "ferrobase.auth.signed_in",
        "ferrobase.auth.token_refreshed",
        "ferrobase.auth.user.updated",
    ] {
        assert!(!api.events(kind).await.is_empty(), "{kind}");
    }
}

async fn admin_users(api: &Api, ada_id: &str) {
    let (_, bob) = api
        .post(
            "/signup",
            json!({"email": "bob@example.com", "password": "bobs password"}),
        )
        .await;
    let bob_id = bob["user"]["id"].as_str().unwrap().to_owned();
    let (status, page) = api.admin_get("/admin/users?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    let after = page["next_after"].as_str().expect("more users").to_owned();
    let (_, rest) = api
        .admin_get(&format!("/admin/users?limit=1000&after={after}"))
        .await;
    assert_eq!(rest["users"].as_array().unwrap().len(), 1);
    assert!(rest.get("next_after").is_none());
    assert_eq!(
        api.admin_get("/admin/users?limit=0").await.0,
        StatusCode::BAD_REQUEST
    );
    // Users cannot use the admin routes.
    let (status, _) = api
        .user_get("/admin/users", bob["access_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Custom claims go into the next tokens; reserved ones are refused.
    let (status, body) = api
        .admin_put(
            &format!("/admin/users/{bob_id}"),
            json!({"claims": {"role": "admin"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .admin_put(
            &format!("/admin/users/{bob_id}"),
            json!({"claims": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(
        (status, body["claims"]["plan"].clone()),
        (StatusCode::OK, json!("pro")),
        "{body}"
    );
    let (_, again) = api.sign_in("bob@example.com", "bobs password").await;
    let payload = {
        use base64::Engine as _;
        let part = again["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        (
            payload["plan"].clone(),
            payload["role"].clone(),
            payload["ns"].clone()
        ),
        (json!("pro"), json!("user"), json!(NS))
    );
    assert!(payload["sid"].is_string() && payload["iat"].is_u64() && payload["exp"].is_u64());

    // Disabling ends the sessions and refuses sign-in; deleting removes the account.
    let (status, _) = api
        .admin_put(&format!("/admin/users/{bob_id}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.refresh(&again["refresh_token"]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.sign_in("bob@example.com", "bobs password").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = api
        .send(
            api.http
                .delete(api.url(&format!("/admin/users/{bob_id}")))
                .bearer_auth(&api.admin),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.admin_get(&format!("/admin/users/{bob_id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.sign_in("bob@example.com", "bobs password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, ada) = api.admin_get(&format!("/admin/users/{ada_id}")).await;
    assert_eq!(
        (status, ada["email"].clone()),
        (StatusCode::OK, json!("ada@example.com"))
    );
    assert!(!api.events("ferrobase.auth.user.deleted").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let api = Api::start("[auth.rate_limits]\nper_ip_per_minute = 5\nper_account_per_minute = 2\n");
    let (status, _) = api.admin_put("/config", json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            api.sign_in("eve@example.com", "whatever long").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let response = api
        .http
        .post(api.url("/token?grant_type=password"))
        .json(&json!({"email": "eve@example.com", "password": "whatever long"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "resource_exhausted");
    // Other accounts from the same address, until the per-IP budget runs out.
    for n in 0..2 {
        assert_eq!(
            api.sign_in(&format!("u{n}@example.com"), "whatever long")
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        api.sign_in("u9@example.com", "whatever long").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Sign-up has a budget of its own.
    assert_eq!(
        api.post(
            "/signup",
            json!({"email": "new@example.com", "password": "long password"})
        )
        .await
        .0,
        StatusCode::OK
    );
}
