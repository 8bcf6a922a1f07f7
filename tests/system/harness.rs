//! Starts `polyshop up` (or one `polyshop serve`) on free ports and a temp data dir, waits for
//! it to be ready, and stops it with SIGTERM.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::unistd::Pid;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// The password of every account the system tests make.
pub const PASSWORD: &str = "correct horse battery";

/// An order of `quantity` × `product_id` under idempotency key `key`, shipped to Berlin and
/// paid with the test card that is always captured.
pub fn order_request(
    key: &str,
    product_id: &str,
    quantity: i32,
) -> polyshop::order::v1::CreateOrderRequest {
    use polyshop::order::v1::{CreateOrderItem, CreateOrderRequest, ShippingAddress};
    CreateOrderRequest {
        idempotency_key: key.into(),
        items: vec![CreateOrderItem {
            product_id: product_id.into(),
            quantity,
        }],
        shipping_address: Some(ShippingAddress {
            recipient: "Jane".into(),
            line1: "Main St 1".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country_code: "DE".into(),
            ..Default::default()
        }),
        payment_method_token: "tok_visa".into(),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_owned()
}

/// PATH with the project's provisioned tools first (nats-server ≥ 2.11 lives there).
fn path_with_tools() -> String {
    format!(
        "{}:{}",
        repo_root().join(".tools/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A port free now and never handed to another test of this binary: the tests run in
/// parallel, and a port one system picked but had not bound yet could otherwise go to another.
/// From below the ephemeral range, so no client connection of another test can hold it.
pub fn free_port() -> u16 {
    polyshop_platform::ports::free_port().expect("a free port")
}

/// A running `polyshop up`.
pub struct System {
    pub child: Child,
    pub env: HashMap<String, String>,
    pub data_dir: PathBuf,
}

impl System {
    /// Environment for a `polyshop` process on `data_dir` with fresh ports.
    pub fn environment(data_dir: &Path) -> HashMap<String, String> {
        let mut env = HashMap::new();
        env.insert("POLYSHOP_DATA_DIR".into(), data_dir.display().to_string());
        // Every context of the contracts that runs as a service, and the edge.
        let contexts = polyshop_platform::config::Settings::default().contexts();
        let names = contexts.iter().map(|(name, _)| *name).chain(["gateway"]);
        for service in names {
            env.insert(
                format!("POLYSHOP_{}_LISTEN", service.to_ascii_uppercase()),
                format!("127.0.0.1:{}", free_port()),
            );
        }
        env.insert(
            "POLYSHOP_NATS_EMBEDDED_PORT".into(),
            free_port().to_string(),
        );
        env.insert("POLYSHOP_LOG".into(), "warn".into());
        env.insert("POLYSHOP_SHUTDOWN_GRACE_SECS".into(), "2".into());
        env.insert("PATH".into(), path_with_tools());
        env
    }

    /// Starts `polyshop up` with `env` and waits until it prints that it is up.
    pub async fn up(data_dir: &Path, env: HashMap<String, String>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_polyshop"))
            .arg("up")
            .envs(&env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so a failed test can take down `up` and every child.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start polyshop up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("Polyshop is up") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "polyshop up did not report ready");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            env,
            data_dir: data_dir.to_owned(),
        }
    }

    /// The URL of a service (`USER`, `CATALOG`, …, `GATEWAY`).
    pub fn url(&self, service: &str) -> String {
        format!("http://{}", self.env[&format!("POLYSHOP_{service}_LISTEN")])
    }

    /// The admin password `up` generated.
    pub fn admin_password(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("admin-credentials.txt"))
            .expect("credentials");
        text.lines()
            .find_map(|l| l.strip_prefix("password: "))
            .expect("password line")
            .to_owned()
    }

    /// The URL of the (first) nats-server `up` started.
    pub fn nats_url(&self) -> String {
        format!(
            "nats://127.0.0.1:{}",
            self.env["POLYSHOP_NATS_EMBEDDED_PORT"]
        )
    }

    /// A client of the system's broker as `identity` (`admin`, `catalog`, …: the password
    /// `up` generated for it under the data dir), named `name`.
    pub async fn nats_as(&self, identity: &str, name: &str) -> async_nats::Client {
        self.nats_options(identity)
            .name(name)
            .connect(self.nats_url())
            .await
            .expect("connect to nats")
    }

    /// Options that authenticate as `identity`, with the password `up` generated for it.
    pub fn nats_options(&self, identity: &str) -> async_nats::ConnectOptions {
        let password = std::fs::read_to_string(polyshop_platform::events::identity::password_file(
            &self.data_dir,
            identity,
        ))
        .expect("the identity's password");
        async_nats::ConnectOptions::with_user_and_password(identity.into(), password.trim().into())
    }

    /// Runs `polyshop <args>` with this system's environment and returns its stdout.
    pub async fn polyshop(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_polyshop"))
            .args(args)
            .envs(&self.env)
            .output()
            .await
            .expect("run polyshop");
        assert!(
            out.status.success(),
            "polyshop {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    /// The newest product of the (demo) catalog.
    pub async fn first_product(&self) -> polyshop::catalog::v1::Product {
        use polyshop::catalog::v1::{
            ListProductsRequest, catalog_service_client::CatalogServiceClient,
        };
        CatalogServiceClient::connect(self.url("CATALOG"))
            .await
            .expect("connect")
            .list_products(ListProductsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .products
            .remove(0)
    }

    /// Logs `login` in with `password` and returns the access token.
    pub async fn login(&self, login: &str, password: &str) -> String {
        use polyshop::user::v1::{LoginRequest, user_service_client::UserServiceClient};
        UserServiceClient::connect(self.url("USER"))
            .await
            .expect("connect")
            .login(LoginRequest {
                login: login.into(),
                password: password.into(),
            })
            .await
            .expect("login")
            .into_inner()
            .access_token
    }

    /// Registers `username` (password [`PASSWORD`]) and returns its access token.
    pub async fn signup(&self, username: &str) -> String {
        use polyshop::user::v1::{RegisterRequest, user_service_client::UserServiceClient};
        UserServiceClient::connect(self.url("USER"))
            .await
            .expect("connect")
            .register(RegisterRequest {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: PASSWORD.into(),
                display_name: String::new(),
            })
            .await
            .expect("register");
        self.login(username, PASSWORD).await
    }

    /// SIGTERM, then wait; returns whether it exited with 0.
    pub async fn stop(mut self) -> bool {
        sigterm(&self.child);
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("polyshop up stops within a minute")
            .expect("wait");
        status.success()
    }
}

impl Drop for System {
    /// A test that panicked leaves no processes behind: the whole group is killed.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The pids of `parent`'s children, each with its command line.
pub fn children_of(parent: u32) -> Vec<(Pid, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((Pid::from_raw(pid), cmdline));
        }
    }
    found
}

/// Sends SIGTERM to a child.
pub fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id().expect("running")).expect("pid fits");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
}

/// Calls `path` on `url` with an empty request and `token` (whatever the method's request
/// type: an empty message decodes as any): the status code (OK on success).
pub async fn grpc_code(url: &str, path: &'static str, token: &str) -> tonic::Code {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(());
    let value: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    match grpc
        .unary::<(), (), _>(
            request,
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::default(),
        )
        .await
    {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

/// A plain HTTP/1.1 GET with a bearer token; the status code.
pub async fn http_get_status(base: &str, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line")
}
