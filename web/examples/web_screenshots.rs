//! Screenshots of a running agent's dashboard, taken in headless Chromium once each page has
//! drawn its data: `web_screenshots BASE_URL NAME=PATH...` writes
//! `target/screenshots/NAME.png` for each page. Handy to look at a real agent's pages (the
//! browser tests do the same over fixtures). Needs chromium and chromedriver.

#[path = "../tests/fixture/mod.rs"]
mod fixture;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(base) = args.first() else {
        eprintln!("usage: web_screenshots BASE_URL NAME=PATH...");
        std::process::exit(2);
    };
    let browser = fixture::browser::Browser::start();
    for page in &args[1..] {
        let Some((name, path)) = page.split_once('=') else {
            eprintln!("expected NAME=PATH, got {page:?}");
            std::process::exit(2);
        };
        browser.open(&format!("{base}{path}"));
        browser.screenshot(name);
        println!("{name}: {base}{path}");
    }
}
