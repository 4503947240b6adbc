"""Links in a built HTML site that point nowhere: a page or file that does not exist, an
anchor no element of the page has, or a mailto: link (Sphinx turns `x@Wx` in prose into one).
Plain Python (no Sphinx), so the tests can run it on pages of their own."""
import html
import pathlib
import re
import urllib.parse

HREF = re.compile(r'<a\s[^>]*?href="([^"]*)"', re.I)
ID = re.compile(r'\sid="([^"]*)"')


def broken_links(site):
    """[(page, href, why)] for every broken local link of the .html pages under `site`."""
    site = pathlib.Path(site)
    ids, found = {}, []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for href in HREF.findall(text):
            href = html.unescape(href)
            scheme = urllib.parse.urlsplit(href).scheme
            if scheme == "mailto":
                found.append((page, href, "a mailto: link (an @ in prose read as an address?)"))
                continue
            if scheme or href.startswith("//"):
                continue                                    # another site: not checked here
            path, _, anchor = href.partition("#")
            target = (page.parent / urllib.parse.unquote(path)).resolve() if path else page
            if not target.exists():
                found.append((page, href, f"{target.name} does not exist"))
                continue
            if anchor and target.suffix == ".html":
                if target not in ids:
                    ids[target] = set(ID.findall(target.read_text(encoding="utf-8",
                                                                  errors="replace")))
                if urllib.parse.unquote(anchor) not in ids[target]:
                    found.append((page, href, f"no element has the id {anchor!r}"))
    return found
