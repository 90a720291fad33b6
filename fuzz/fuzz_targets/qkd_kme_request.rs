//! The simulator's entry point (route + engine) with untrusted requests: method, path, query and
//! body from the fuzzer, caller SAE_A or SAE_B. Never panics; every reply is valid JSON.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use http::Method;
use libfuzzer_sys::fuzz_target;
use qkd_link::SaeId;
use qkd_link::sim::SimConfig;
use qkd_link::sim::engine::Engine;
use qkd_link::sim::entropy::SeededEntropy;
use qkd_link::sim::route::parse_request;

const CONFIG: &str = "limits: {max_sae_id_count: 2}\nkmes:\n  - {id: KME_A, listen: '127.0.0.1:0', saes: [SAE_A]}\n  - {id: KME_B, listen: '127.0.0.1:0', saes: [SAE_B, SAE_C]}\nlinks:\n  - {kmes: [KME_A, KME_B], secret_key_rate_bps: 100000, max_key_count: 100, initial_key_count: 50}\n";

fn config() -> &'static SimConfig {
    static CFG: OnceLock<SimConfig> = OnceLock::new();
    CFG.get_or_init(|| SimConfig::from_yaml(CONFIG, "fuzz").expect("valid fuzz config"))
}

fuzz_target!(|data: &[u8]| {
    // Layout: [selector][path NUL query NUL body]
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();
    let method = if sel & 1 == 0 { Method::GET } else { Method::POST };
    let (kme, caller) = if sel & 2 == 0 { (0, "SAE_A") } else { (1, "SAE_B") };
    let t0 = Instant::now();
    let mut engine = Engine::new(config(), t0, Box::new(SeededEntropy::new(u64::from(sel))));
    let reply = match parse_request(&method, &path, query.as_deref(), body) {
        Ok(req) => engine.handle(t0, kme, &SaeId::new(caller).expect("valid"), req),
        Err(reply) => reply,
    };
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_ok());
});
