// The report's one stylesheet, inlined into the page (the document loads nothing).
// Chart fill colours appear only in charts (the browser test counts their pixels as proof that each chart was drawn).
export const REPORT_CSS = `
:root{--fg:#1f2328;--muted:#5b6570;--line:#d8dee4;--panel:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:14px/1.45 system-ui,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 24px 48px}
h1{font-size:22px;margin:0}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:0 0 6px}
header>p{margin:2px 0 12px}
.muted{color:var(--muted)}
.bad{color:#b3261e}
.nowrap{white-space:nowrap}
.mono,pre,code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:12px}
.mono{overflow-wrap:anywhere}
pre{background:var(--panel);padding:8px 10px;border-radius:4px;overflow:auto;max-height:420px;margin:6px 0}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0 0 10px;font-size:13px}
.meta dt{color:var(--muted)}.meta dd{margin:0}
.banner{border-left:4px solid #e8b400;background:#fff8e6;padding:8px 12px;margin:10px 0;font-size:13px}
.banner.bad{border-color:#b3261e;background:#fdf0ef;color:var(--fg)}
.banner ul{margin:4px 0 0;padding-left:20px}
details{margin:6px 0}summary{cursor:pointer;color:#24508f}
.kfs{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 4px}
.kf{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px}
.kf-k{font-size:12px;color:var(--muted)}.kf-v{font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
thead th{background:var(--panel);font-weight:600;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.stage-final{background:#f3f7fc}
.note{font-size:12px;margin:6px 0 0}
.scroll{overflow-x:auto}
.verdict{display:inline-block;padding:0 7px;border-radius:9px;font-size:11px;font-weight:600;line-height:17px}
.v-faster{background:#e2f3e8;color:#1c6b3c}
.v-nogain{background:#fcefcc;color:#6e5200}
.v-slower{background:#fbe1df;color:#a3221b}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px}
@media (max-width:1000px){.charts{grid-template-columns:1fr}}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:10px 10px 8px}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
svg{display:block;max-width:100%;height:auto}
svg text{font-family:system-ui,"Segoe UI",Roboto,Arial,"Liberation Sans","DejaVu Sans",sans-serif;font-size:11px;fill:#333}
svg .tick{font-size:10px;fill:#5b6570}
svg .val{font-size:10px;fill:#1f2328;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg .grp{font-size:11px;fill:#1f2328;font-weight:600}
svg .axis{font-size:11px;fill:#5b6570}
svg .grid{stroke:#e8ecf0;stroke-width:1}
svg .axisline{stroke:#8a939d;stroke-width:1}
svg .ref{stroke:#1f2328;stroke-width:1.2;stroke-dasharray:5 3}
svg .whisker{stroke:#1f2328;stroke-width:1.3;fill:none}
.step{border-top:1px solid var(--line);padding:10px 0}
.step:first-of-type{border-top:0}
.counts{display:flex;flex-wrap:wrap;gap:6px 14px;margin:6px 0}
.count{background:var(--panel);border-radius:4px;padding:1px 8px;font-size:13px}
table.kv{width:auto;min-width:320px;margin:6px 0}
table.kv caption{text-align:left;font-weight:600;font-size:12px;padding:2px 0;color:var(--muted)}
table.kv th{font-weight:normal}
table.kv th,table.kv td,table.list td,table.list th{padding:3px 8px}
table.summary th,table.summary td{padding:6px 7px}
table.list td{font-size:12px}
#search h3{margin:18px 0 6px}
.goalcard{border:1px solid var(--line);border-left:5px solid #2e7d4f;border-radius:6px;padding:10px 14px;margin:8px 0 14px}
.goalcard.notmet{border-left-color:#b3261e}
.goal-verdict{font-size:15px;margin:0 0 8px}
.goal-verdict .verdict{font-size:13px;line-height:21px;padding:0 10px}
.goalcard .meta dd{overflow-wrap:anywhere}
pre.recipe{white-space:pre-wrap;overflow-wrap:anywhere;user-select:all;max-height:360px}
figure.frontier{max-width:800px;margin:10px 0 4px}
svg rect.edge{fill:#f1f3f5}
svg .spread{stroke:#3b4a5a;stroke-width:1.2}
table.trials th,table.trials td,table.finalists th,table.finalists td{padding:4px 6px}
td.steps{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:12px;overflow-wrap:anywhere;min-width:200px}
td.status{min-width:110px}
td.lat{min-width:120px}
.why{font-size:12px;color:var(--muted);margin-top:2px;overflow-wrap:anywhere}
tr.trial-frontier{background:#eef3fc}
tr.trial-chosen{background:#fff6d9;box-shadow:inset 4px 0 0 #c98f00}
.tags{margin-top:2px}
.tag{display:inline-block;font-size:10px;font-weight:600;line-height:15px;border-radius:8px;padding:0 6px;margin:1px 0;background:var(--panel);color:var(--muted);white-space:nowrap}
.tag.t-frontier{color:#1e3a8a;background:#dbe5fb}
.tag.t-chosen{color:#6b4e00;background:#fde9a8}
@media print{.charts{grid-template-columns:1fr 1fr}details{display:block}}
`;
