"""The service's own pages: /docs works offline (no CDN), /model names the imgsz requests use."""

from pathlib import Path

import httpx
import pytest

from napari_livecell.core.inference.predict import DEFAULT_IMGSZ


def test_docs_is_a_plain_page_of_the_endpoints_without_a_cdn(server):
    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html and "cdn" not in html.lower() and "https://" not in html
    for endpoint in ("GET /health", "GET /model", "POST /segment"):
        assert endpoint in html
    assert "imgsz" in html and "conf" in html  # the parameters, with their defaults
    assert httpx.get(f"{server}/redoc").status_code == 404  # ReDoc loads from a CDN too: not served


def test_model_reports_the_imgsz_a_request_uses(server):
    info = httpx.get(f"{server}/model").json()
    assert info["imgsz"] == DEFAULT_IMGSZ
    schema = httpx.get(f"{server}/openapi.json").json()
    parameters = schema["paths"]["/segment"]["post"]["parameters"]
    default = next(p for p in parameters if p["name"] == "imgsz")["schema"]["default"]
    assert info["imgsz"] == default
    assert isinstance(info["trained_imgsz"], int)


def test_the_all_extra_includes_the_service():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def requirements(extra: str) -> set[str]:
        # "napari-livecell[gui,server]" inside an extra names the project's own extras
        found = set()
        for requirement in extras[extra]:
            if requirement.startswith(f"{project['name']}["):
                for inner in requirement.partition("[")[2].rstrip("]").split(","):
                    found |= requirements(inner.strip())
            else:
                found.add(requirement)
        return found

    assert set(extras["server"]) <= requirements("all")
    assert "torch" not in " ".join(project["dependencies"])
