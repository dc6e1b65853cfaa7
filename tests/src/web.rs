//! A browser without JavaScript for end-to-end tests: cookies kept, redirects followed by
//! hand, forms posted as the login pages write them.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;

pub struct Response {
    /// The status code.
    pub status: u16,
    /// Where it redirects.
    pub location: Option<String>,
    /// The body.
    pub body: String,
}

/// A browser without JavaScript: keeps cookies, follows nothing on its own.
pub struct Browser {
    /// The client (resolving the issuer's host to the server).
    pub http: reqwest::Client,
    /// Cookies by name.
    pub cookies: HashMap<String, String>,
    /// The issuer URL: relative URLs are resolved against it.
    pub issuer: String,
}

impl Browser {
    /// A browser with no cookies yet, sending with `http` (which resolves the issuer's host).
    pub fn new(http: reqwest::Client, issuer: &str) -> Self {
        Browser { http, cookies: HashMap::new(), issuer: issuer.to_owned() }
    }

    pub fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') { format!("{}{url}", self.issuer) } else { url.to_owned() }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Response {
        let r = request.header("cookie", self.cookie_header()).send().await.expect("request");
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().expect("ascii");
            assert!(c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"), "cookie flags: {c}");
            let (name, value) = c.split(';').next().expect("pair").split_once('=').expect("name=value");
            assert!(name.starts_with("__Host-"), "cookie without the __Host- prefix: {c}");
            if c.contains("Max-Age=0") {
                self.cookies.remove(name)
            } else {
                self.cookies.insert(name.into(), value.into())
            };
        }
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|l| l.to_str().expect("ascii").to_owned());
        Response { status, location, body: r.text().await.expect("body") }
    }

    pub async fn get(&mut self, url: &str) -> Response {
        let req = self.http.get(self.absolute(url));
        self.send(req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        let req = self.http.post(self.absolute(url)).form(form);
        self.send(req).await
    }

    /// POSTs a multipart form (`multipart/form-data`, as a browser sends a file input):
    /// text fields, then one file `(field, file name, bytes)`.
    pub async fn post_file(&mut self, url: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Response {
        let boundary = "----hawiya-test-boundary-7f3a9c";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        let (name, file_name, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let req = self.http.post(self.absolute(url)).header("content-type", format!("multipart/form-data; boundary={boundary}")).body(body);
        self.send(req).await
    }

    /// GETs a file: the status, the Content-Disposition and the bytes.
    pub async fn download(&mut self, url: &str) -> (u16, String, Vec<u8>) {
        let r = self.http.get(self.absolute(url)).header("cookie", self.cookie_header()).send().await.expect("request");
        let disposition = r.headers().get("content-disposition").map(|v| v.to_str().expect("ascii").to_owned()).unwrap_or_default();
        (r.status().as_u16(), disposition, r.bytes().await.expect("body").to_vec())
    }

    /// Follows redirects inside the provider; returns the first one that leaves it.
    pub async fn follow(&mut self, mut r: Response) -> (Response, Option<String>) {
        while let Some(l) = r.location.clone() {
            if !(l.starts_with('/') || l.starts_with(&self.issuer)) {
                return (r, Some(l));
            }
            r = self.get(&l).await;
        }
        (r, None)
    }

    /// Runs an authorization request through the login (and consent) pages; returns where
    /// the provider finally sends the browser.
    pub async fn login(&mut self, authorize: &str, national_id: &str, password: &str) -> String {
        let r = self.get(authorize).await;
        let (page, out) = self.follow(r).await;
        if let Some(out) = out {
            return out;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        let r = self.submit_login(&page.body, national_id, password, None).await;
        self.through_consent(r).await
    }

    pub async fn submit_login(&mut self, page: &str, national_id: &str, password: &str, code: Option<&str>) -> Response {
        let (tx, csrf) = (hidden(page, "tx"), hidden(page, "csrf"));
        let mut form = vec![("tx", tx.as_str()), ("csrf", csrf.as_str()), ("national_id", national_id), ("password", password)];
        if let Some(c) = code {
            form.push(("code", c));
        }
        self.post("/login", &form).await
    }

    pub async fn through_consent(&mut self, r: Response) -> String {
        let (page, out) = self.follow(r).await;
        if let Some(out) = out {
            return out;
        }
        assert!(page.body.contains(r#"action="/consent""#), "expected the consent page: {} {}", page.status, page.body);
        let (tx, csrf) = (hidden(&page.body, "tx"), hidden(&page.body, "csrf"));
        let r = self.post("/consent", &[("tx", &tx), ("csrf", &csrf), ("decision", "allow")]).await;
        let (_, out) = self.follow(r).await;
        out.expect("consent leads back to the client")
    }
}

/// The value of a hidden form field.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden field {name} in {html}")) + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).expect("url").query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
