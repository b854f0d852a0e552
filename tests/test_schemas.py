"""The HTTP API as its OpenAPI document says (schemas.py): Schemathesis reads /openapi.json,
sends what it describes and what it does not, and checks every answer against it: no 5xx, no
status the document does not list, every body of the shape it gives, schema-invalid requests
refused. A schema-valid image may still hold no digit: that 400, and only that, says so.
"""

import logging

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from mnist_cnn import schemas, serve

EXAMPLES = 25  # examples a route (the server reads each image it is sent)
IMAGES = ("multipart/form-data", "image/")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    app = serve.create_app(feedback_db=tmp_path_factory.mktemp("st") / "f.sqlite3")
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_document_says(case, caplog):
    caplog.set_level(logging.WARNING, "mnist_cnn.serve")
    caplog.clear()
    response = case.call()
    image = (case.media_type or "").startswith(IMAGES)
    # a schema cannot say "a picture with a digit in it": a valid image may get 400 ...
    case.validate_response(response, excluded_checks=[positive_data_acceptance] if image else [])
    valid = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    if response.status_code == 400 and valid:  # ... and its body says that is why
        assert response.json()["problem"] == "image", response.text
    assert "image work failed" not in caplog.text  # the image code raised: a bug


def test_the_document_lists_each_routes_errors(api_schema):
    doc = api_schema.raw_schema
    predict = doc["paths"]["/api/predict"]["post"]
    assert set(predict["responses"]) == {"200", *map(str, schemas.READING)}
    assert set(predict["requestBody"]["content"]) == {
        "multipart/form-data",
        "image/*",
        "application/json",
    }
    feedback = doc["paths"]["/api/feedback"]["post"]["responses"]
    assert {"201", "401", "429", "507"} <= set(feedback)
    assert doc["paths"]["/readyz"]["get"]["responses"].keys() == {"200", "413", "503"}
