"""Logging in and out, and changing the password."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from ..extensions import db
from . import auth, bp, safe_next
from .forms import ActionForm, LoginForm, PasswordForm

LOCKED = ("Too many failed attempts for this account or from your network. Sign-in opens again once fewer than 10 "
          "failed tries fall within the last 15 minutes; a try while it is closed counts as one more, even with the "
          "right password. Someone with access to the server can open it now with the command: mailer admin unlock")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(form.next.data))
    error, status = None, 200
    if form.validate_on_submit():
        try:
            admin = auth.authenticate(db.session, form.email.data, form.password.data, request.remote_addr)
        except auth.LockedOut:
            admin, error, status = None, LOCKED, 429
        else:
            error, status = (None, 200) if admin else ("That email and password do not match an account.", 401)
        user = None
        if admin:
            auth.prune_attempts(db.session)
            user = auth.start_session(db.session, admin)
        db.session.commit()
        if user:
            session.clear()  # nothing from before the login survives into the logged-in session
            g.pop("csrf_token", None)  # Flask-WTF's cached token belonged to the session just cleared
            login_user(user)
            return redirect(safe_next(form.next.data))
    elif request.method == "POST":
        error, status = "Enter your email and password.", 400
    return render_template("admin/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    if ActionForm().validate_on_submit():
        if current_user.is_authenticated:
            auth.end_session(db.session, current_user)  # a copy of the cookie elsewhere is logged out too
            db.session.commit()
        logout_user()
        session.clear()
        g.pop("csrf_token", None)
    return redirect(url_for("admin.login"))


@bp.route("/password", methods=["GET", "POST"])
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        if form.new.data != form.repeat.data:
            form.repeat.errors.append("The two new passwords differ.")
        else:
            try:
                changed = auth.change_password(current_user.admin, form.current.data, form.new.data)
            except auth.WeakPassword as exc:
                form.new.errors.append(str(exc))
            else:
                if changed:
                    auth.end_other_sessions(db.session, current_user)
                    db.session.commit()
                    login_user(auth.ConsoleUser(current_user.admin, current_user.key))  # the new id; others end
                    flash("Password changed. Other browsers logged in as you have been logged out.", "ok")
                    return redirect(url_for("admin.password"))
                form.current.errors.append("That is not your current password.")
    status = 400 if request.method == "POST" else 200
    return render_template("admin/password.html", form=form), status
