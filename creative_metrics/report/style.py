"""The report's stylesheet, inlined in the page (no external files: the report is one self-contained file)."""

CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2328;
 margin:0;background:#f6f8fa}
main{max-width:1220px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;
 padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#57606a;font-size:13px;margin:0 0 12px}
.badge{display:inline-block;padding:4px 12px;border-radius:14px;font-weight:600;font-size:13px;
 margin-right:8px}
.badge.ok{background:#dafbe1;color:#116329}.badge.no{background:#ffebe9;color:#a40e26}
.badge.na{background:#eaeef2;color:#57606a}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px;font-variant-numeric:tabular-nums}
th,td{padding:4px 9px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;color:#424a53}
td:first-child,th:first-child{text-align:left}td.name{text-align:left;color:#424a53}
tr.baseline td{color:#57606a}
.pos{color:#116329}.neg{color:#a40e26}
.grid{display:flex;flex-wrap:wrap;gap:18px}.card{flex:1 1 520px;min-width:0}
.card svg{max-width:100%;height:auto}
.note{color:#57606a;font-size:12.5px;max-width:980px}
ul.fail{color:#a40e26;font-size:13px}
td.failed{color:#a40e26;font-weight:600}td.passed{color:#116329}td.unknown{color:#57606a}
.error{color:#a40e26;font-size:13px;font-weight:600}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:12px}
"""
