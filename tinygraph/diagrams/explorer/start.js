// The page's last script: every module has registered its hooks; draw.
"use strict";
window.tinygraphExplorer.start();
