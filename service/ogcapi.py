"""OGC API - Processes 1.0 documents of braggtile: its one process (``render``), the job
status info and results, conformance classes and RFC 7807 problem types.

The process ``render`` takes the inputs of ``POST /v1/jobs`` (:class:`JobRequest`: its JSON
schema is the process description's) and runs as a braggtile job; its outputs are links to the
job's OME-Zarr store and to a preview picture of frame 0.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadInput, NotFound, NotReady, describe
from service.models import JobRecord, JobRequest, Link, Status
from tiling.store import software_version

PROCESS_ID = "render"
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
CONFORMANCE = [
    f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
    for name in ("core", "json", "job-list", "oas30")
]
#: Keywords of a JobRequest field's JSON schema that an OGC input schema keeps.
_SCHEMA_KEYS = ("type", "minimum", "maximum", "enum", "additionalProperties", "items")


class NoSuchProcess(NotFound):
    """No process of that id (only ``render`` exists)."""


class NoSuchJob(NotFound):
    """No job of that id."""


class ResultNotReady(NotReady):
    """The job has not finished yet."""


#: Exception class -> the ``type`` of its problem body (the most specific class wins).
PROBLEM_TYPES: dict[type[Exception], str] = {
    NoSuchProcess: "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process",
    NoSuchJob: "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job",
    ResultNotReady: "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready",
}


class Execute(BaseModel):
    """``POST /processes/render/execution``: the inputs of a braggtile job request."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict, description="JobRequest's fields")
    outputs: dict[str, Any] = Field(default_factory=dict, description="outputs wanted (all)")
    response: Literal["raw", "document"] = "raw"


class StatusInfo(BaseModel):
    """A job as OGC API - Processes reports it (statusInfo.yaml)."""

    jobID: str
    processID: str = PROCESS_ID
    type: Literal["process"] = "process"
    status: Status
    message: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    progress: int = Field(ge=0, le=100, description="percent of the tiles done")
    links: list[Link]


class OgcJobList(BaseModel):
    jobs: list[StatusInfo]
    links: list[Link]


def _input_description(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    """An OGC input description of the JobRequest field ``name`` (JSON schema ``prop``)."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    schema = {k: v for k, v in branches[0].items() if k in _SCHEMA_KEYS}
    return {
        "title": name,
        "description": prop.get("description", ""),
        "minOccurs": 0,
        "maxOccurs": 1,
        "schema": schema,
    }


OUTPUTS: dict[str, dict[str, Any]] = {
    "store": {
        "title": "OME-Zarr store",
        "description": "the job's pixels: zarr.open_group(href), photons per pixel",
        "schema": {"type": "string", "format": "uri", "contentMediaType": "application/vnd.zarr"},
    },
    "preview": {
        "title": "preview of frame 0",
        "description": "PNG of the whole first frame (query: scale, vmin, vmax, colormap)",
        "schema": {"type": "string", "format": "uri", "contentMediaType": "image/png"},
    },
}


def process_summary(base: str) -> dict[str, Any]:
    """The process ``render`` as listed at ``/processes`` (processSummary.yaml)."""
    return {
        "id": PROCESS_ID,
        "version": software_version(),
        "title": "Render nanoBragg diffraction images",
        "description": "nanoBragg flags or the typed job model, rendered tile by tile on Dask "
        "workers into an OME-Zarr store; give exactly one of 'nanobragg' or 'job'.",
        "keywords": ["diffraction", "nanoBragg", "X-ray", "zarr"],
        "jobControlOptions": ["async-execute"],
        "outputTransmission": ["reference"],
        "links": [
            {"rel": "self", "href": f"{base}/processes/{PROCESS_ID}", "type": "application/json"},
            {"rel": f"{OGC_REL}/execute", "href": f"{base}/processes/{PROCESS_ID}/execution"},
        ],
    }


def process_description(base: str) -> dict[str, Any]:
    """The process ``render`` with its inputs (JobRequest's fields) and outputs (process.yaml)."""
    properties = JobRequest.model_json_schema()["properties"]
    inputs = {name: _input_description(name, prop) for name, prop in properties.items()}
    return {**process_summary(base), "inputs": inputs, "outputs": OUTPUTS}


def job_request(body: Execute) -> JobRequest:
    """The braggtile job request of an execute request; BadInput naming the faulty input."""
    unknown = sorted(set(body.outputs) - set(OUTPUTS))
    if unknown:
        raise BadInput(
            f"outputs: no output {unknown[0]!r}; outputs are {', '.join(OUTPUTS)}",
            field=f"outputs.{unknown[0]}",
            limit=", ".join(OUTPUTS),
        )
    # A qualified input value {"value": ...} stands for its value.
    values = {
        name: value["value"] if isinstance(value, dict) and "value" in value else value
        for name, value in body.inputs.items()
    }
    try:
        return JobRequest.model_validate(values)
    except ValidationError as err:
        error = describe(err.errors()[0], prefix="inputs")
        raise BadInput(error["detail"], field=error["field"], limit=error["limit"]) from None


def status_info(record: JobRecord, base: str) -> StatusInfo:
    """The statusInfo of a braggtile job record; its links lead to the results when done."""
    links = [
        {"rel": "self", "href": f"{base}/jobs/{record.id}", "type": "application/json"},
        {"rel": "alternate", "href": f"/v1/jobs/{record.id}", "type": "application/json"},
    ]
    if record.status == "successful":
        results = f"{base}/jobs/{record.id}/results"
        links.append({"rel": f"{OGC_REL}/results", "href": results, "type": "application/json"})
    return StatusInfo(
        jobID=record.id,
        status=record.status,
        message=record.message,
        created=record.created,
        started=record.started,
        finished=record.finished,
        progress=int(record.progress),
        links=links,
    )


def results(record: JobRecord) -> dict[str, Any]:
    """The outputs of a finished job, as links (results.yaml); otherwise the matching error."""
    if record.status in ("accepted", "running"):
        raise ResultNotReady(f"job {record.id} is {record.status}", field="jobId")
    if record.status != "successful":
        reason = f": {record.message}" if record.message else ""
        raise NotFound(f"job {record.id} is {record.status}, it has no results{reason}", "jobId")
    job = f"/v1/jobs/{record.id}"
    return {
        "store": {"href": f"{job}/zarr", "type": "application/vnd.zarr", "title": "OME-Zarr"},
        "preview": {"href": f"{job}/frames/0/preview.png", "type": "image/png", "title": "PNG"},
    }
