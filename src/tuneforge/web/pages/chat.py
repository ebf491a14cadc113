"""The chat playground: pick a running deployment (or a registered model's name, which the gateway routes to its
deployment), set the system prompt and sampling, and talk; `compare` sends each prompt to two models and streams both
answers side by side. The page script (static/chat.js) streams from the OpenAI-compatible /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
DEFAULTS = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}


@router.get("/chat", response_class=HTMLResponse)
def chat_page(request: Request, model: str = "", compare: str = "") -> HTMLResponse:
    platform = request.app.state.platform
    deployments = platform.deployments.list()["items"]
    running = [d for d in deployments if d["status"] == "running"]
    # A registered model's name works too: the gateway sends it to that model's deployment.
    deployed_models = sorted({d["modelName"] for d in running} - {d["name"] for d in running})
    names = [d["name"] for d in running] + deployed_models
    first = model or (names[0] if names else "")
    second = compare or next((name for name in names if name != first), "")
    return render(request, "chat/page.html", running=running, deployed_models=deployed_models,
                  starting=[d for d in deployments if d["status"] in ("starting", "restarting")],
                  model=first, compare_model=second, compare=bool(compare), defaults=DEFAULTS)
