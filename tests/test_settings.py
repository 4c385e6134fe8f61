import json

import pytest

from cxrgan_desktop.core.settings import (
    AuditPreferences,
    LCOPreferences,
    Settings,
    TSTRPreferences,
    load_settings,
    save_settings,
    settings_path,
)


def test_round_trip_saves_only_non_defaults():
    settings = Settings()
    settings.last_model = "paper"
    settings.viewer.window_button = "right"
    save_settings(settings)
    data = json.loads(settings_path().read_text())
    assert data == {"schema_version": 2, "last_model": "paper",
                    "viewer": {"window_button": "right"}}
    loaded = load_settings()
    assert loaded.last_model == "paper" and loaded.viewer.window_button == "right"
    assert loaded.generate_count == Settings().generate_count


def test_corrupt_file_gives_defaults_and_is_kept_aside(caplog):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{ not json")
    assert load_settings() == Settings()
    assert path.with_name("settings.json.corrupt").exists() and not path.exists()
    assert "unreadable" in caplog.text


def test_wrong_types_and_unknown_keys_are_ignored():
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "generate_count": "many",
                                "generate_batch_size": True, "future_option": 3,
                                "viewer": {"invert": True}}))
    loaded = load_settings()
    assert loaded.generate_count == 4 and loaded.generate_batch_size == 2
    assert loaded.viewer.invert is True


def test_a_schema_1_file_keeps_its_reader_study_folders_under_the_new_name():
    """Schema 1 called the reader study "quiz"; its saved key and sessions survive the rename."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1,
                                "quiz": {"key": "/studies/a.key.json",
                                         "sessions": ["/studies/r1.session.json"]}}))
    loaded = load_settings()
    assert loaded.study.key == "/studies/a.key.json"
    assert loaded.study.sessions == ["/studies/r1.session.json"]
    save_settings(loaded)
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 2 and "quiz" not in saved
    assert saved["study"]["key"] == "/studies/a.key.json"


def test_the_audit_section_round_trips():
    """The Audit tab's form is one section of the settings file, saved like the others."""
    settings = Settings()
    settings.audit = AuditPreferences(train_dir="/data/train", synthetic="model:paper", n=64,
                                      spaces=["pixels", "inception"], k=3, alpha_percent=0.25,
                                      last_audit="/audits/a1")
    save_settings(settings)
    saved = json.loads(settings_path().read_text())["audit"]
    assert saved == {"train_dir": "/data/train", "synthetic": "model:paper", "n": 64,
                     "spaces": ["pixels", "inception"], "k": 3, "alpha_percent": 0.25,
                     "last_audit": "/audits/a1"}
    assert load_settings() == settings


def test_the_audit_alpha_default_is_the_cli_default_in_percent():
    from cxrgan_desktop.tasks.audit_file import DEFAULT_ALPHA

    assert AuditPreferences().alpha_percent == pytest.approx(100 * DEFAULT_ALPHA)


def test_wrong_audit_types_fall_back_for_those_keys_only(caplog):
    """A whole number is a float in JSON; a bool is not a number; a string is not a list."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 2, "audit": {
        "train_dir": "/data/train", "k": "five", "n": 2.5, "seed": True, "spaces": "pixels",
        "reid_model": ["a"], "alpha_percent": 1, "out_dir": "/audits", "last_audit": None}}))
    loaded = load_settings().audit
    expected = AuditPreferences(train_dir="/data/train", alpha_percent=1.0, out_dir="/audits")
    assert loaded == expected
    assert isinstance(loaded.alpha_percent, float)
    for key in ("k", "n", "seed", "spaces", "reid_model", "last_audit"):
        assert f"ignoring setting {key}=" in caplog.text


def test_a_whole_number_for_a_float_and_no_bool_for_a_number_in_other_sections():
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 2, "lco": {"threshold": 1, "count": True},
                                "tstr": {"mix_ratio": 2, "test_fraction": False}}))
    loaded = load_settings()
    assert loaded.lco.threshold == 1.0 and loaded.lco.count == LCOPreferences().count
    assert loaded.tstr.mix_ratio == 2.0
    assert loaded.tstr.test_fraction == TSTRPreferences().test_fraction


def test_a_file_without_an_audit_section_needs_no_migration():
    """Schema 2 files written before the Audit tab simply lack the section."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 2, "last_model": "paper"}))
    loaded = load_settings()
    assert loaded.last_model == "paper" and loaded.audit == AuditPreferences()
