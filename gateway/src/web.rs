//! The storefront (`/`) and the operations console (`/console`): the pages under `web/dist`,
//! built from `web/src` and committed (so `just run` serves them on a machine without Node;
//! `web/check.sh` proves the bundle matches its sources). They are embedded in the binary and
//! served with a content hash as `ETag`, `Cache-Control: no-cache` (a revalidation costs a 304,
//! and a new release is seen at once since the asset names carry no hash) and gzip when the
//! browser takes it. `gateway.web_dir` serves a directory from disk instead, read on every
//! request, for working on the pages without rebuilding the edge.

use std::{path::Path, sync::LazyLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use tonic::body::Body;

/// One file of the pages, ready to serve.
#[derive(Debug, Clone)]
struct Asset {
    content_type: &'static str,
    body: Bytes,
    /// `body` gzip-compressed, when that makes it smaller.
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

impl Asset {
    fn new(name: &str, body: Bytes) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex::encode(&digest[..12]));
        let gzip = gzip(&body).filter(|z| z.len() < body.len());
        Self {
            content_type: content_type(name),
            body,
            gzip,
            etag: HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        }
    }
}

/// The files of `web/dist`, by the name a path maps to.
static EMBEDDED: LazyLock<Vec<(&'static str, Asset)>> = LazyLock::new(|| {
    macro_rules! embed {
        ($($name:literal),* $(,)?) => {
            vec![$((
                $name,
                Asset::new($name, Bytes::from_static(include_bytes!(concat!("../../web/dist/", $name)))),
            )),*]
        };
    }
    embed![
        "index.html",
        "console.html",
        "assets/storefront.js",
        "assets/console.js",
        "assets/app.css",
    ]
});

/// The file a request path names: `/` the storefront, `/console` the console, `/assets/<file>`
/// a file of either; `None` for any other path (the API's routes).
fn file_of(path: &str) -> Option<String> {
    match path {
        "/" | "/index.html" => Some("index.html".into()),
        "/console" | "/console/" => Some("console.html".into()),
        _ => {
            let name = path.strip_prefix("/assets/")?;
            // One plain file name: nothing that climbs out of the directory on disk.
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            plain.then(|| format!("assets/{name}"))
        }
    }
}

/// The answer to a GET or HEAD of a page or asset, with the path label for the access log;
/// `None` when the path is not one of the pages'.
pub async fn serve(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    web_dir: Option<&Path>,
) -> Option<(&'static str, Response<Body>)> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let name = file_of(path)?;
    let label = if name.starts_with("assets/") {
        "/assets/*"
    } else if name == "index.html" {
        "/"
    } else {
        "/console"
    };
    let asset = match web_dir {
        Some(dir) => match tokio::fs::read(dir.join(&name)).await {
            Ok(body) => Some(Asset::new(&name, body.into())),
            Err(_) => None,
        },
        None => EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone()),
    };
    let response = match asset {
        Some(asset) => respond(&asset, headers, method == Method::HEAD),
        None => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    Some((label, response))
}

fn respond(asset: &Asset, request: &HeaderMap, head: bool) -> Response<Body> {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let gzip = asset.gzip.as_ref().filter(|_| accepts_gzip(request));
    let mut builder = Response::builder()
        .header(header::ETAG, asset.etag.clone())
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "accept-encoding");
    if fresh {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("a valid response");
    }
    builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, asset.content_type)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer");
    if asset.content_type.starts_with("text/html") {
        // The pages load only their own scripts and talk only to this origin: an injected
        // script has nowhere to load from and nowhere to send a token.
        builder = builder
            .header(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'self'",
            )
            .header(header::X_FRAME_OPTIONS, "DENY");
    }
    let body = match gzip {
        Some(z) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            z.clone()
        }
        None => asset.body.clone(),
    };
    builder = builder.header(header::CONTENT_LENGTH, body.len());
    let body = if head {
        Body::empty()
    } else {
        Body::new(http_body_util::Full::new(body))
    };
    builder.body(body).expect("a valid response")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.trim().split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::new(http_body_util::Full::new(Bytes::from_static(
            text.as_bytes(),
        ))))
        .expect("a valid response")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "ico" => "image/x-icon",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

fn gzip(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_pages_and_plain_asset_files_only() {
        assert_eq!(file_of("/").as_deref(), Some("index.html"));
        assert_eq!(file_of("/console").as_deref(), Some("console.html"));
        assert_eq!(
            file_of("/assets/storefront.js").as_deref(),
            Some("assets/storefront.js")
        );
        for other in [
            "/v1/products",
            "/assets/",
            "/assets/../Cargo.toml",
            "/assets/a/b.js",
            "/assets/.env",
            "/assets/%2e%2e",
        ] {
            assert_eq!(file_of(other), None, "{other}");
        }
    }

    #[test]
    fn gzip_is_sent_only_to_a_browser_that_takes_it() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br".parse().unwrap(),
        );
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, "br, gzip;q=0".parse().unwrap());
        assert!(!accepts_gzip(&h));
    }

    #[tokio::test]
    async fn an_embedded_page_revalidates_with_its_etag() {
        let (label, first) = serve(&Method::GET, "/", &HeaderMap::new(), None)
            .await
            .expect("the storefront");
        assert_eq!(label, "/");
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(
            first
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        let (_, second) = serve(&Method::GET, "/", &again, None).await.expect("again");
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        let (_, missing) = serve(&Method::GET, "/assets/none.js", &HeaderMap::new(), None)
            .await
            .expect("an asset path");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(
            serve(&Method::POST, "/", &HeaderMap::new(), None)
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_web_dir_is_read_on_every_request() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("assets")).expect("assets");
        std::fs::write(dir.path().join("assets/app.css"), "body{}").expect("write");
        let fetch = || async {
            serve(
                &Method::GET,
                "/assets/app.css",
                &HeaderMap::new(),
                Some(dir.path()),
            )
            .await
            .expect("served")
            .1
        };
        let first = fetch().await;
        std::fs::write(dir.path().join("assets/app.css"), "body{color:red}").expect("write");
        let second = fetch().await;
        assert_eq!(second.status(), StatusCode::OK);
        assert_ne!(
            first.headers()[header::ETAG],
            second.headers()[header::ETAG]
        );
        assert_eq!(
            second.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }
}
