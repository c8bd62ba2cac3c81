"""seed_app.py: the seed-style recommendation service, the peer recd is
measured against: FastAPI on uvicorn, precomputed top-N lists in Redis,
a popularity fallback cached on a miss — the shape of the seed article's
quick start, written for this benchmark. It answers the same request
as recd: GET /v1/recommendations?user_id=...&n=10.

Redis holds `recs:<user_id>:<n>` = JSON list of items and
`recs:__popular__:<n>`; the harness (bench/scenarios) fills both from
recd's own answers over the same data set.
"""
import json
import os
from typing import List, Optional

import redis
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
cache = redis.Redis(host="127.0.0.1", port=int(os.environ.get("REDIS_PORT", "6379")), decode_responses=True)


class Item(BaseModel):
    id: str
    score: float
    reason: str


class RecommendationResponse(BaseModel):
    user_id: Optional[str]
    items: List[Item]
    strategy: str
    cached: bool


@app.get("/v1/recommendations", response_model=RecommendationResponse)
async def get_recommendations(user_id: Optional[str] = None, n: int = 10, placement: Optional[str] = None,
                              item_id: Optional[str] = None):
    key = "recs:%s:%d" % (user_id, n)
    cached = cache.get(key) if user_id else None
    if cached:
        return RecommendationResponse(user_id=user_id, items=json.loads(cached), strategy="personalized",
                                      cached=True)
    # unknown or anonymous shopper: the popular list, cached for next time
    items = json.loads(cache.get("recs:__popular__:%d" % n) or "[]")
    if user_id:
        cache.setex(key, 300, json.dumps(items))
    return RecommendationResponse(user_id=user_id, items=items, strategy="popular", cached=False)


@app.get("/health")
async def health():
    return {"status": "healthy"}
