//! Every string of the Connect page, in English and French, in one table.

use std::collections::BTreeMap;

use bankgate_core::model::Language;

/// `(key, English, French)`. `{customer}`, `{institution}` and `{title}` are filled in by the
/// view or the template.
pub const STRINGS: &[(&str, &str, &str)] = &[
    (
        "page_title",
        "Connect your bank account",
        "Connectez votre compte bancaire",
    ),
    ("close", "Close", "Fermer"),
    ("back", "Back", "Retour"),
    ("default_customer", "this application", "cette application"),
    (
        "consent_title",
        "Share your banking information",
        "Partagez vos renseignements bancaires",
    ),
    (
        "consent_body",
        "You are about to connect your bank to {customer} through bankgate. Your bank password is never shared with {customer}.",
        "Vous allez connecter votre institution financière à {customer} au moyen de bankgate. Votre mot de passe bancaire n'est jamais transmis à {customer}.",
    ),
    (
        "consent_terms",
        "Read the terms of use",
        "Lire les conditions d'utilisation",
    ),
    ("consent_accept", "I agree", "J'accepte"),
    ("consent_deny", "I decline", "Je refuse"),
    (
        "consent_denied",
        "You declined: nothing was shared with {customer}. To connect your account, choose I agree.",
        "Vous avez refusé : rien n'a été transmis à {customer}. Pour connecter votre compte, choisissez J'accepte.",
    ),
    (
        "inst_title",
        "Choose your bank",
        "Choisissez votre institution financière",
    ),
    (
        "inst_search_label",
        "Search for your bank",
        "Recherchez votre institution financière",
    ),
    ("inst_search_button", "Search", "Rechercher"),
    (
        "inst_none",
        "No institution matches your search.",
        "Aucune institution ne correspond à votre recherche.",
    ),
    (
        "inst_none_available",
        "No institution is available here. Test institutions are shown in demo mode.",
        "Aucune institution n'est offerte ici. Les institutions de test s'affichent en mode démo.",
    ),
    ("inst_test_badge", "Test institution", "Institution de test"),
    (
        "cred_title",
        "Log in to {institution}",
        "Connectez-vous à {institution}",
    ),
    ("cred_username", "Username", "Nom d'utilisateur"),
    ("cred_password", "Password", "Mot de passe"),
    ("cred_submit", "Continue", "Continuer"),
    (
        "cred_hint",
        "Test credentials: username Greatday, password Everyday.",
        "Identifiants de test : nom d'utilisateur Greatday, mot de passe Everyday.",
    ),
    (
        "cred_secure",
        "bankgate never keeps your bank password.",
        "bankgate ne conserve jamais votre mot de passe bancaire.",
    ),
    ("mfa_title", "Security question", "Question de sécurité"),
    (
        "mfa_intro",
        "Your bank asks you to confirm your identity.",
        "Votre institution vous demande de confirmer votre identité.",
    ),
    ("mfa_submit", "Submit", "Envoyer"),
    (
        "mfa_choose_all",
        "Choose every answer that applies.",
        "Choisissez toutes les réponses qui s'appliquent.",
    ),
    (
        "mfa_empty",
        "Answer the question to continue.",
        "Répondez à la question pour continuer.",
    ),
    (
        "acc_title",
        "Choose your account",
        "Choisissez votre compte",
    ),
    (
        "acc_title_multiple",
        "Choose your accounts",
        "Choisissez vos comptes",
    ),
    ("acc_submit", "Continue", "Continuer"),
    (
        "acc_none_selected",
        "Select an account to continue.",
        "Sélectionnez un compte pour continuer.",
    ),
    ("sq_title", "Security questions", "Questions de sécurité"),
    (
        "sq_intro",
        "Answer your bank's other security questions now, so that {customer} can update your accounts later without asking you.",
        "Répondez dès maintenant aux autres questions de sécurité de votre institution financière, afin que {customer} puisse mettre vos comptes à jour plus tard sans vous les poser.",
    ),
    ("sq_submit", "Save my answers", "Enregistrer mes réponses"),
    ("sq_skip", "Skip", "Passer cette étape"),
    (
        "sq_empty",
        "Answer every question to continue.",
        "Répondez à chaque question pour continuer.",
    ),
    ("acc_ending", "ending in", "se terminant par"),
    (
        "success_title",
        "Your account is connected",
        "Votre compte est connecté",
    ),
    (
        "success_body",
        "You can now return to {customer}.",
        "Vous pouvez maintenant retourner à {customer}.",
    ),
    ("success_continue", "Continue", "Continuer"),
    ("closed_title", "Session closed", "Session fermée"),
    (
        "closed_body",
        "You can go back to {customer}.",
        "Vous pouvez retourner à {customer}.",
    ),
    (
        "error_title",
        "We could not connect your account",
        "Nous n'avons pas pu connecter votre compte",
    ),
    // The title of a page refused before anything was tried (a bad link, an ended session).
    (
        "link_title",
        "This link cannot be used",
        "Ce lien ne peut pas être utilisé",
    ),
    (
        "session_ended_title",
        "Your session has ended",
        "Votre session est terminée",
    ),
    (
        "unavailable_title",
        "This page is not available",
        "Cette page n'est pas disponible",
    ),
    // The window title of a screen that shows an error: `{title}` is the screen's title.
    ("title_error", "Error: {title}", "Erreur : {title}"),
    (
        "start_over",
        "Choose another institution",
        "Choisir une autre institution",
    ),
    (
        "err_INVALID_LOGIN",
        "The username or password is incorrect. Check them and try again.",
        "Le nom d'utilisateur ou le mot de passe est incorrect. Vérifiez-les et réessayez.",
    ),
    (
        "err_RETRY_LATER",
        "We could not reach your bank. Try again in a few minutes.",
        "Nous n'avons pas pu joindre votre institution. Réessayez dans quelques minutes.",
    ),
    (
        "err_DISABLED_LOGIN",
        "Your bank has disabled this account. Contact your bank before trying again.",
        "Votre institution a désactivé ce compte. Communiquez avec elle avant de réessayer.",
    ),
    (
        "err_INVALID_SECURITY_RESPONSE",
        "That answer was not correct. Try again.",
        "Cette réponse est incorrecte. Réessayez.",
    ),
    (
        "err_TOO_MANY_REQUESTS",
        "Too many attempts. Wait a few minutes, then try again.",
        "Trop de tentatives. Attendez quelques minutes, puis réessayez.",
    ),
    (
        "err_SESSION_NONEXISTENT",
        "This step has expired. Log in again.",
        "Cette étape a expiré. Connectez-vous de nouveau.",
    ),
    (
        "err_AGGREGATION_ERROR",
        "Something unexpected happened. Try again.",
        "Un problème inattendu est survenu. Réessayez.",
    ),
    (
        "err_token_missing",
        "This page must be opened with an authorization token. Go back to the application and start again.",
        "Cette page doit être ouverte avec un jeton d'autorisation. Retournez à l'application et recommencez.",
    ),
    (
        "err_token_invalid",
        "This link is not valid. Go back to the application and start again.",
        "Ce lien n'est pas valide. Retournez à l'application et recommencez.",
    ),
    (
        "err_token_used",
        "This link was already used. Go back to the application and start again.",
        "Ce lien a déjà été utilisé. Retournez à l'application et recommencez.",
    ),
    (
        "err_token_expired",
        "This link has expired. Go back to the application and start again.",
        "Ce lien a expiré. Retournez à l'application et recommencez.",
    ),
    (
        "err_session_expired",
        "Your session has expired. Go back to the application and start again.",
        "Votre session a expiré. Retournez à l'application et recommencez.",
    ),
    (
        "err_instance_unknown",
        "This connection page does not exist. Check the address.",
        "Cette page de connexion n'existe pas. Vérifiez l'adresse.",
    ),
    (
        "err_demo_on_production",
        "The test institution is not available here: this is a production instance. Use the sandbox instance to try the test users.",
        "L'institution de test n'est pas disponible ici : c'est une instance de production. Utilisez l'instance sandbox pour essayer les utilisateurs de test.",
    ),
    (
        "err_customer_unknown",
        "This page could not tell which application opened it. Go back to the application and start again.",
        "Cette page n'a pas pu déterminer quelle application l'a ouverte. Retournez à l'application et recommencez.",
    ),
];

/// The strings of one language, keyed for the template.
pub fn strings(language: Language) -> BTreeMap<&'static str, &'static str> {
    STRINGS
        .iter()
        .map(|(key, en, fr)| {
            let text = match language {
                Language::En => *en,
                Language::Fr => *fr,
            };
            (*key, text)
        })
        .collect()
}

/// The message key for an error code, falling back to the generic one.
pub fn error_key(code: &str) -> String {
    let key = format!("err_{code}");
    if STRINGS.iter().any(|(k, _, _)| *k == key) {
        key
    } else {
        "err_AGGREGATION_ERROR".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_translated_and_keys_are_unique() {
        let mut keys = std::collections::HashSet::new();
        for (key, en, fr) in STRINGS {
            assert!(keys.insert(*key), "duplicate key {key}");
            assert!(!en.trim().is_empty() && !fr.trim().is_empty(), "{key}");
            // Same text in both is a missed translation (placeholders aside).
            assert_ne!(en, fr, "{key} is not translated");
            for placeholder in ["{customer}", "{institution}", "{title}"] {
                assert_eq!(en.contains(placeholder), fr.contains(placeholder), "{key}");
            }
        }
    }
}
