"""Open an HTML report in headless Chromium and list which images and videos loaded (used by the report tests).

A copy of the report gets a small script that, once the page and every video have loaded (or failed), writes
``<pre id="vidseg-load">`` with one line per element: ``img <naturalWidth>x<naturalHeight>`` or
``video <videoWidth>x<videoHeight>`` (0x0 = not loaded). ``chromium --dump-dom`` prints the DOM after the
virtual time budget, and the lines are read back from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_PROBE = """<script>
(function(){
  function report(){
    var lines=[];
    document.querySelectorAll('img').forEach(function(i){lines.push('img '+i.naturalWidth+'x'+i.naturalHeight);});
    document.querySelectorAll('video').forEach(function(v){lines.push('video '+v.videoWidth+'x'+v.videoHeight);});
    var pre=document.createElement('pre');pre.id='vidseg-load';pre.textContent=lines.join('\\n');
    document.body.appendChild(pre);
  }
  window.addEventListener('load',function(){
    var vids=[].slice.call(document.querySelectorAll('video'));
    var left=vids.length; if(!left){report();return;}
    vids.forEach(function(v){
      function done(){ if(--left===0) report(); }
      if(v.readyState>=2){done();return;}
      v.addEventListener('loadeddata',done,{once:true}); v.addEventListener('error',done,{once:true});
      v.load();
    });
  });
})();
</script>"""


def find_chromium() -> str | None:
    """The headless browser binary: $VIDSEG_CHROMIUM, chromium, chromium-browser or google-chrome (None if none)."""
    for name in (os.environ.get("VIDSEG_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def loaded_media(report: Path, browser: str, budget_ms: int = 20000) -> list[tuple[str, int, int]]:
    """(kind, width, height) of every img and video of ``report`` as Chromium loaded them."""
    probe = report.with_name(report.stem + ".probe.html")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    try:
        proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio",
                               "--autoplay-policy=no-user-gesture-required", f"--virtual-time-budget={budget_ms}",
                               "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="vidseg-load">(.*?)</pre>', proc.stdout, re.S)
    if found is None:
        raise AssertionError(f"the page never finished loading in Chromium (rc {proc.returncode}): "
                             f"{proc.stderr.strip()[-500:]}")
    out = []
    for line in found.group(1).strip().splitlines():
        kind, size = line.split()
        w, h = size.split("x")
        out.append((kind, int(w), int(h)))
    return out
