import json

from cxrgan_desktop.core.settings import Settings, load_settings, save_settings, settings_path


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
