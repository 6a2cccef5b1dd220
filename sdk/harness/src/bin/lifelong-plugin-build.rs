//! `lifelong-plugin-build <plugin crate dir> <out dir>`: build a plugin crate
//! into `<out dir>/plugin.wasm` (a component) with its `plugin.toml` beside
//! it — the layout `lifelong serve` loads from its plugins directory.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, out] = args.as_slice() else {
        eprintln!("usage: lifelong-plugin-build <plugin crate dir> <out dir>");
        std::process::exit(2);
    };
    let run = || -> anyhow::Result<()> {
        let dir = std::path::Path::new(dir);
        let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("plugin.toml").display()))?;
        kernel::plugins::manifest::parse(&manifest)?;
        let wasm = lifelong_harness::build(dir)?;
        std::fs::create_dir_all(out)?;
        std::fs::write(std::path::Path::new(out).join("plugin.wasm"), wasm)?;
        std::fs::write(std::path::Path::new(out).join("plugin.toml"), manifest)?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    println!("built {out}/plugin.wasm");
}
